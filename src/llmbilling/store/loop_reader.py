"""One-statement reads for code running on an asyncio event loop, without a thread hand-off.

The API's hot path (the bearer token's row, then the workspace's state) is two primary-key or
unique-index reads. Handing each to a worker thread cost about 300 µs of CPU per request under
load (the thread wake-ups and the GIL changing hands), several times the reads themselves, so
the API reads on its event loop instead:

- SQLite: the statement runs on the loop itself, on a kept sqlite3 connection. It is a B-tree
  lookup inside this process (tens of µs), and in WAL mode (see :mod:`llmbilling.store.engine`)
  a writer never blocks a reader, so it does not wait on anything. The same connection
  answers ``PRAGMA data_version`` for the decision cache (another connection's commit moves
  it), so the cache's freshness check costs one pragma and no second connection.
- PostgreSQL: psycopg's asyncio driver under SQLAlchemy's ``AsyncEngine`` (a pool of its own,
  sized, timed and named by the store's :class:`~llmbilling.store.engine.PoolSettings`;
  autocommit): the loop awaits the socket and never blocks on a slow or absent server.

A reader belongs to one event loop: open it on that loop and close it there.
:class:`LoopReaders` keeps one per loop for an app that several servers (each with its own
loop) may run at once.
"""

from __future__ import annotations

import asyncio
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias, cast
from uuid import UUID
from weakref import WeakKeyDictionary

from sqlalchemy import Pool, PoolProxiedConnection, Select, TextualSelect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from llmbilling.store.engine import (
    Store,
    named_parameter_dialect,
    sqlite_error_discards_connection,
)

ReadStatement: TypeAlias = Select[Any] | TextualSelect


class LoopReader(ABC):
    """Runs one read statement for a coroutine; database errors propagate as SQLAlchemy's."""

    dialect: str

    @abstractmethod
    async def first(
        self, statement: ReadStatement, parameters: Mapping[str, Any]
    ) -> Sequence[Any] | None:
        """The statement's first row (its values by position, as the driver gives them: a
        UUID column may be text), or None when it returns none."""

    @abstractmethod
    def commits_unseen_by_feed(self) -> bool:
        """Whether the database may hold commits that this process's change feed has not told
        of since the previous call (True at the first call on a new connection). SQLite: any
        other connection's commit, from this process or another (its feed hears only this
        process's writes, and ``PRAGMA data_version`` cannot tell whose a commit was).
        PostgreSQL: False without reading, as its feed hears every process (and a listener
        outage shows as the feed not being connected)."""

    @abstractmethod
    async def close(self) -> None:
        """Release the reader's connections."""


class _SqliteReader(LoopReader):
    """Straight on the sqlite3 connection of one kept connection of the store's read engine:
    the loop runs one statement at a time, and a pool checkout per read, or SQLAlchemy's
    execution and result layers, cost more than the read. Statements are rendered to SQL once;
    a UUID parameter is bound as SQLAlchemy stores it (32 hex digits), and rows come back as
    the driver gives them. When the store disposes of the engine (``Store.close``, which gives
    the engine a new pool), the kept connection goes too, at the next read."""

    def __init__(self, store: Store) -> None:
        self.dialect = store.dialect
        self._engine = store.read_engine
        self._connection: PoolProxiedConnection | None = None
        self._pool: Pool | None = None  # the pool the kept connection came from
        self._sql: dict[ReadStatement, str] = {}
        # The kept connection's last ``PRAGMA data_version``; None on a new connection.
        self._data_version: int | None = None

    async def first(
        self, statement: ReadStatement, parameters: Mapping[str, Any]
    ) -> Sequence[Any] | None:
        sql = self._sql.get(statement)
        if sql is None:
            sql = self._sql[statement] = str(
                statement.compile(dialect=named_parameter_dialect(self.dialect))
            )
        bound = {name: _sqlite_value(value) for name, value in parameters.items()}
        try:
            row: Sequence[Any] | None = self._driver().execute(sql, bound).fetchone()
            return row
        except sqlite3.Error as error:
            self._forget_connection(error)
            raise DBAPIError.instance(sql, bound, error, sqlite3.Error) from error

    def commits_unseen_by_feed(self) -> bool:
        # data_version moves on a connection when any *other* connection commits to the file
        # (any process; in WAL mode too); this reader's connection never writes.
        try:
            version: int = self._driver().execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as error:
            self._forget_connection(error)
            # Unknown (the connection may not even open: sqlite3 raises that unwrapped too):
            # the caller reads the store, which reports the fault.
            return True
        moved = version != self._data_version
        self._data_version = version
        return moved

    def _driver(self) -> sqlite3.Connection:
        if self._pool is not self._engine.pool:
            self._release(discard=False)
        connection = self._connection
        if connection is None:
            self._pool = self._engine.pool
            connection = self._connection = self._engine.raw_connection()
        return cast(sqlite3.Connection, connection.driver_connection)

    def _forget_connection(self, error: sqlite3.Error) -> None:
        # Whatever broke, the next read starts on a fresh connection; one that may be stuck
        # with its fault (read-only, unopenable storage) is discarded, not pooled.
        self._release(discard=sqlite_error_discards_connection(error))

    def _release(self, *, discard: bool) -> None:
        self._data_version = None
        if self._connection is not None:
            connection, self._connection, self._pool = self._connection, None, None
            if discard:
                connection.invalidate()
            else:
                connection.close()

    async def close(self) -> None:
        self._release(discard=False)


def _sqlite_value(value: object) -> object:
    if isinstance(value, UUID):
        return value.hex
    if value is None or isinstance(value, str | int):
        return value
    # Other types (a datetime, say) have storage rules of SQLAlchemy's that this reader does
    # not repeat: refuse them rather than bind them differently.
    raise TypeError(f"the SQLite loop reader binds text, integers and UUIDs, not {value!r}")


class _PostgresReader(LoopReader):
    """Without the sync engines' pre-ping (a ``SELECT 1`` round trip at every checkout): a
    read that finds its pooled connection dropped by the server is retried once instead, on a
    fresh connection (SQLAlchemy then discards every connection pooled before the drop). Reads
    are idempotent, so the retry is safe, and in steady state it costs nothing."""

    def __init__(self, store: Store) -> None:
        self.dialect = store.dialect
        self._engine: AsyncEngine = create_async_engine(
            store.url,
            **store.pool.queue_pool_options(),
            isolation_level="AUTOCOMMIT",
            connect_args=store.pool.postgres_connect_args("loop"),
        )

    async def first(
        self, statement: ReadStatement, parameters: Mapping[str, Any]
    ) -> Sequence[Any] | None:
        try:
            return await self._first(statement, parameters)
        except DBAPIError as error:
            if not error.connection_invalidated:
                raise
        return await self._first(statement, parameters)

    async def _first(
        self, statement: ReadStatement, parameters: Mapping[str, Any]
    ) -> Sequence[Any] | None:
        async with self._engine.connect() as connection:
            result = await connection.execute(statement, parameters)
            return result.first()

    def commits_unseen_by_feed(self) -> bool:
        return False

    async def close(self) -> None:
        await self._engine.dispose()


def open_loop_reader(store: Store) -> LoopReader:
    """A reader over ``store``'s database for the running event loop (no connection yet)."""
    if store.dialect == "sqlite":
        return _SqliteReader(store)
    return _PostgresReader(store)


class LoopReaders:
    """One :class:`LoopReader` per running event loop over one store, opened at the loop's
    first read; ``close`` (at a server's shutdown, on its loop) releases that loop's reader.

    A loop that ends without ``close`` (a server that skips the lifespan) leaves its reader to
    the garbage collector, with the loop.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._readers: WeakKeyDictionary[asyncio.AbstractEventLoop, LoopReader] = (
            WeakKeyDictionary()
        )
        self._last: tuple[asyncio.AbstractEventLoop | None, LoopReader | None] = (None, None)

    def current(self) -> LoopReader:
        """The reader of the calling coroutine's loop."""
        loop = asyncio.get_running_loop()
        # A server asks from one loop, twice a request: answer from the last pair first.
        # (Read as one tuple: another loop's thread may replace it at any time.)
        last_loop, last_reader = self._last
        if last_loop is loop and last_reader is not None:
            return last_reader
        reader = self._readers.get(loop)
        if reader is None:
            reader = self._readers[loop] = open_loop_reader(self._store)
        self._last = (loop, reader)
        return reader

    async def close(self) -> None:
        self._last = (None, None)
        reader = self._readers.pop(asyncio.get_running_loop(), None)
        if reader is not None:
            await reader.close()
