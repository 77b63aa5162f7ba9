"""Whether the database can serve: the readiness probe reads, and proves a write can succeed.

- SQLite: the folder of the database file has at least :data:`SQLITE_MIN_FREE_BYTES` free,
  and a committed write succeeds (``PRAGMA user_version`` set to its own value, in a write
  transaction: it rewrites the header page, so a read-only file, folder or mount fails it).
  The free-space floor is there because a small write can still fit into the already-allocated
  write-ahead log on a full disk while the next larger one fails.
- PostgreSQL: a write transaction is not read-only (``transaction_read_only``: a hot standby,
  or ``default_transaction_read_only``). A full disk on the server is not visible to a client
  until a write fails.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import text

from llmbilling.errors import StoreUnavailableError
from llmbilling.store.engine import DatabaseFault, Store

SQLITE_MIN_FREE_BYTES = 1024 * 1024


def check_database(store: Store) -> None:
    """Return when the database answers a read and can take a write.

    Raises :class:`StoreUnavailableError` (a generic :class:`DatabaseFault` message) otherwise.
    """
    with store.connection() as connection:
        connection.execute(text("SELECT 1"))
    if store.dialect == "sqlite":
        _check_sqlite_write(store)
    else:
        _check_postgres_write(store)


def _check_sqlite_write(store: Store) -> None:
    database = store.url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        folder = Path(database).expanduser().parent
        try:
            stats = os.statvfs(folder)
        except OSError:
            raise StoreUnavailableError(DatabaseFault.UNREACHABLE.value) from None
        if stats.f_bavail * stats.f_frsize < SQLITE_MIN_FREE_BYTES:
            raise StoreUnavailableError(DatabaseFault.DISK_FULL.value)
    with store.transaction() as connection:
        version = int(connection.exec_driver_sql("PRAGMA user_version").scalar_one())
        connection.exec_driver_sql(f"PRAGMA user_version = {version}")


def _check_postgres_write(store: Store) -> None:
    with store.transaction() as connection:
        read_only = connection.execute(text("SELECT current_setting('transaction_read_only')"))
        if read_only.scalar_one() == "on":
            # The session keeps the read-only default it started with: not back to the pool,
            # or the first write after the database is made writable again would fail on it.
            connection.invalidate()
            raise StoreUnavailableError(DatabaseFault.READ_ONLY.value)
