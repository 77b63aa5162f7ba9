"""Engines for the two supported databases, and the sanitizing of database errors.

A :class:`Store` holds two engines on the same database: ``engine`` for writes (one
transaction per use case) and ``read_engine`` in autocommit, so a read is exactly its one
statement: no BEGIN before it, no ROLLBACK after it. Their pools (and the event-loop reader's,
:mod:`llmbilling.store.loop_reader`) are sized by one :class:`PoolSettings`.

A database failure becomes :class:`StoreUnavailableError` at the store's door with a fixed,
generic message by kind (:class:`DatabaseFault`), never the driver's text: that names the host,
port, role, database or file. The driver's first line (passwords removed) goes to the log.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection as Connection  # the handle store functions take
from sqlalchemy import Dialect, Engine, Insert, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.engine.interfaces import BindTyping
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from llmbilling.errors import DatabaseNotFoundError, InvalidInputError, StoreUnavailableError

POSTGRES_CONNECT_TIMEOUT_SECONDS = 5
SQLITE_BUSY_TIMEOUT_MS = 5000
_URL_CREDENTIALS = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """The size of each of a process's three pools (writes, reads, the event-loop reader) and
    how long a PostgreSQL connection may sit idle.

    Each pool holds at most ``size + max_overflow`` connections, so a process holds at most
    :attr:`per_process` on PostgreSQL. The defaults (10 kept, no overflow: 30 a process) let
    three processes share PostgreSQL's default ``max_connections`` of 100 (3 reserved for
    superusers). Overflow connections are closed when given back, which under concurrency
    means a new backend every few requests; so the default keeps every connection it opens,
    and ``idle_seconds`` (PostgreSQL's ``idle_session_timeout``, 0 = never) lets the server end
    those nobody used for that long: the pools then shrink to nothing when idle, and a pooled
    connection found closed is replaced at its next use (pre-ping, or the loop reader's retry).
    """

    size: int = 10
    max_overflow: int = 0
    idle_seconds: float = 300.0
    application_name: str = field(default_factory=lambda: f"llmbilling:{os.getpid()}")

    @property
    def per_process(self) -> int:
        return 3 * (self.size + self.max_overflow)

    def queue_pool_options(self) -> dict[str, Any]:
        return {"pool_size": self.size, "max_overflow": self.max_overflow}

    def postgres_connect_args(self, role: str) -> dict[str, Any]:
        """psycopg connect arguments for the pool ``role`` (``write``, ``read``, ``loop``):
        the connect timeout, and an ``application_name`` of ``<application_name>:<role>`` by
        which ``pg_stat_activity`` shows this process's connections."""
        arguments: dict[str, Any] = {
            "connect_timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS,
            "application_name": f"{self.application_name}:{role}",
        }
        if self.idle_seconds > 0:
            arguments["options"] = f"-c idle_session_timeout={round(self.idle_seconds * 1000)}"
        return arguments


class DatabaseFault(StrEnum):
    """What kind of database failure a caller is told about: each member's value is the whole
    message a tenant sees (no host, port, role, database name or file path)."""

    UNREACHABLE = "the database cannot be reached"
    TIMEOUT = "the database did not answer in time"
    CREDENTIALS = "the database refused the service's credentials"
    NO_DATABASE = "the configured database does not exist"
    READ_ONLY = "the database is read-only: nothing can be written"
    DISK_FULL = "the database's storage is full: nothing can be written"
    STORAGE = "the database could not read or write its storage"
    BUSY = "the database is busy"
    FAILED = "the database failed the operation"


# SQLite primary result codes (an extended code's low byte), by fault.
_SQLITE_FAULTS: dict[int, DatabaseFault] = {
    3: DatabaseFault.READ_ONLY,  # SQLITE_PERM
    5: DatabaseFault.BUSY,  # SQLITE_BUSY
    6: DatabaseFault.BUSY,  # SQLITE_LOCKED
    8: DatabaseFault.READ_ONLY,  # SQLITE_READONLY
    10: DatabaseFault.STORAGE,  # SQLITE_IOERR
    13: DatabaseFault.DISK_FULL,  # SQLITE_FULL
    14: DatabaseFault.UNREACHABLE,  # SQLITE_CANTOPEN
}
# A connection that hit one of these may be stuck with it (SQLite opens a file it cannot
# write read-only, for good; a PostgreSQL session keeps the read-only default it started
# with): it is discarded, not given back to the pool.
_SQLITE_DISCARDING = frozenset({3, 8, 10, 13, 14})
_POSTGRES_DISCARDING = frozenset({"25006"})
# PostgreSQL SQLSTATEs (and classes, by their first two characters), by fault.
_POSTGRES_FAULTS: dict[str, DatabaseFault] = {
    "28": DatabaseFault.CREDENTIALS,
    "3D": DatabaseFault.NO_DATABASE,
    "08": DatabaseFault.UNREACHABLE,
    "57P": DatabaseFault.UNREACHABLE,
    "25006": DatabaseFault.READ_ONLY,
    "53100": DatabaseFault.DISK_FULL,
    "53300": DatabaseFault.BUSY,
    "57014": DatabaseFault.TIMEOUT,
    "40": DatabaseFault.BUSY,
}
# libpq's own texts for a connection that failed before the server sent a SQLSTATE.
_CONNECT_TEXTS: tuple[tuple[tuple[str, ...], DatabaseFault], ...] = (
    (("authentication failed",), DatabaseFault.CREDENTIALS),
    (("no password supplied",), DatabaseFault.CREDENTIALS),
    (("fatal:", 'role "', "does not exist"), DatabaseFault.CREDENTIALS),
    (("fatal:", 'database "', "does not exist"), DatabaseFault.NO_DATABASE),
    (("timeout expired",), DatabaseFault.TIMEOUT),
)


def normalize_database_url(database_url: str) -> URL:
    """Parse a URL and pin the driver: ``postgresql://`` and ``postgres://`` use psycopg 3.

    Raises :class:`InvalidInputError` naming ``database_url`` for anything else.
    """
    if "\x00" in database_url:
        # libpq would cut the name at the NUL and connect to another database; SQLite's path
        # functions raise. Neither may be reached.
        raise InvalidInputError("database_url", "contains a NUL byte")
    try:
        url = make_url(database_url)
    except ArgumentError:
        raise InvalidInputError(
            "database_url", "not a database URL", ("sqlite:///PATH", "postgresql://...")
        ) from None
    backend = url.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return url.set(drivername="sqlite+pysqlite")
    raise InvalidInputError(
        "database_url", f"unsupported database {backend!r}", ("sqlite", "postgresql")
    )


@dataclass(frozen=True, slots=True)
class Store:
    """Both engines of one database. ``close`` releases their pools."""

    url: URL
    engine: Engine
    read_engine: Engine
    pool: PoolSettings = PoolSettings()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.read_engine.dispose()
        self.engine.dispose()

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """One autocommit read connection (no BEGIN/ROLLBACK around its statements).

        Database failures inside, including the connect, become
        :class:`StoreUnavailableError` with a sanitized one-line message.
        """
        with self.translated_errors(), self.read_engine.connect() as connection:
            yield connection

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction, committed when the block ends without an exception.

        Database failures become :class:`StoreUnavailableError`; an ``IntegrityError`` (a
        duplicate id) propagates for the caller to name.
        """
        try:
            with self.engine.begin() as connection:
                yield connection
        except IntegrityError:
            raise
        except SQLAlchemyError as error:
            raise unavailable(error, self.url) from None

    @contextmanager
    def translated_errors(self) -> Iterator[None]:
        """The store's door: database failures inside become :class:`StoreUnavailableError`
        (a :class:`DatabaseFault` message; the detail is logged); nothing else is touched."""
        try:
            yield
        except SQLAlchemyError as error:
            raise unavailable(error, self.url) from None


def unavailable(error: BaseException, url: URL | None = None) -> StoreUnavailableError:
    """The error a caller sees for a database failure: the fault's generic message. The
    driver's first line (:func:`describe_database_error`) is logged, for operators only."""
    fault = database_fault(error)
    log.warning("database failure (%s): %s", fault.name, describe_database_error(error, url))
    return StoreUnavailableError(fault.value)


def open_store(
    database_url: str,
    *,
    pool: PoolSettings | None = None,
    pool_pre_ping: bool = True,
    create: bool = True,
) -> Store:
    """Create the engines (no connection is made yet).

    With ``create`` a SQLite file (and its folder) is created on first connect. Without it a
    missing file raises :class:`DatabaseNotFoundError` naming the path, and the engines open
    the file read-write only (SQLite's ``mode=rw``), so nothing creates it later either.

    ``pool`` sizes the pools (defaults: :class:`PoolSettings`). ``pool_pre_ping`` replaces
    connections the server dropped while they sat in the pool; tests of dropped connections
    turn it off to see the failure.
    """
    url = normalize_database_url(database_url)
    pool = pool or PoolSettings()
    if url.get_backend_name() == "sqlite":
        return Store(
            url,
            _sqlite_engine(url, pool, create=create),
            _sqlite_engine(url, pool, create=create, autocommit=True),
            pool,
        )
    return Store(
        url,
        _postgres_engine(url, pool, pool_pre_ping=pool_pre_ping),
        _postgres_engine(url, pool, pool_pre_ping=pool_pre_ping, autocommit=True),
        pool,
    )


def _postgres_engine(
    url: URL, pool: PoolSettings, *, pool_pre_ping: bool, autocommit: bool = False
) -> Engine:
    options: dict[str, Any] = {
        **pool.queue_pool_options(),
        "pool_pre_ping": pool_pre_ping,
        "connect_args": pool.postgres_connect_args("read" if autocommit else "write"),
    }
    if autocommit:
        options["isolation_level"] = "AUTOCOMMIT"
    engine = create_engine(url, **options)
    event.listen(engine, "handle_error", _discard_stuck_connection)
    return engine


def _sqlite_engine(
    url: URL, pool: PoolSettings, *, create: bool, autocommit: bool = False
) -> Engine:
    options: dict[str, Any] = {}
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        options.update(pool.queue_pool_options())  # a file database: SQLAlchemy's QueuePool
        path = Path(database).expanduser()
        if create:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise InvalidInputError(
                    "database_url",
                    f"cannot create the folder {str(path.parent)!r}: {error.strerror}",
                ) from None
        else:
            if not path.is_file():
                raise DatabaseNotFoundError(database)
            # A URI filename in mode=rw: a file removed after this check is not created anew.
            url = url.set(
                database=f"file:{quote(str(path.resolve()))}",
                query={**url.query, "mode": "rw", "uri": "true"},
            )
    if autocommit:
        options["isolation_level"] = "AUTOCOMMIT"
    engine = create_engine(url, **options)
    event.listen(engine, "connect", _configure_sqlite_connection)
    event.listen(engine, "handle_error", _discard_stuck_connection)
    if not autocommit:
        # Write transactions take SQLite's write lock up front (BEGIN IMMEDIATE): a deferred
        # transaction that reads, then writes, can fail with "database is locked" instead of
        # waiting. SQLAlchemy's documented recipe: pysqlite emits no BEGIN, we emit ours.
        event.listen(engine, "connect", _disable_pysqlite_begin)
        event.listen(engine, "begin", _begin_immediate)
    return engine


def _disable_pysqlite_begin(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    dbapi_connection.isolation_level = None


def _begin_immediate(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _discard_stuck_connection(context: ExceptionContext) -> None:
    # SQLAlchemy's documented hook: a "disconnect" is invalidated (closed, not pooled), and the
    # pool's older connections with it, so the next use connects afresh and sees a fix.
    error = context.original_exception
    if (
        sqlite_error_code(error) in _SQLITE_DISCARDING
        or getattr(error, "sqlstate", None) in _POSTGRES_DISCARDING
    ):
        context.is_disconnect = True


def sqlite_error_code(error: BaseException) -> int | None:
    """The primary SQLite result code of a ``sqlite3.Error`` (None for anything else)."""
    code = getattr(error, "sqlite_errorcode", None) if isinstance(error, sqlite3.Error) else None
    return None if code is None else int(code) & 0xFF


def sqlite_error_discards_connection(error: BaseException) -> bool:
    """Whether a connection that raised ``error`` may be stuck with it (read-only, full,
    unopenable storage) and must be discarded rather than reused."""
    return sqlite_error_code(error) in _SQLITE_DISCARDING


def _configure_sqlite_connection(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    # WAL lets readers run beside a writer; foreign keys are off in SQLite unless asked for.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def named_parameter_dialect(dialect: str) -> Dialect:
    """A dialect that renders ``:name`` parameters, as ``text()`` expects, and no bind casts
    (``:id::UUID`` would not parse as a parameter; the executing dialect adds its own)."""
    if dialect == "postgresql":
        compiler_dialect: Dialect = postgresql.psycopg.dialect(paramstyle="named")  # type: ignore[no-untyped-call]
        compiler_dialect.bind_typing = BindTyping.NONE
        return compiler_dialect
    return sqlite.dialect(paramstyle="named")


def database_fault(error: BaseException) -> DatabaseFault:
    """The kind of a database failure, from the driver's error code (SQLite result code,
    PostgreSQL SQLSTATE) or, for a connection libpq could not open, its text."""
    if isinstance(error, PoolTimeoutError):
        return DatabaseFault.BUSY
    original = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    code = sqlite_error_code(original)
    if code is not None:
        return _SQLITE_FAULTS.get(code, DatabaseFault.FAILED)
    sqlstate = getattr(original, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        for prefix in (sqlstate, sqlstate[:3], sqlstate[:2]):
            if prefix in _POSTGRES_FAULTS:
                return _POSTGRES_FAULTS[prefix]
        return DatabaseFault.FAILED
    if isinstance(error, DBAPIError) and type(original).__name__ == "OperationalError":
        text = str(original).lower()
        for needles, fault in _CONNECT_TEXTS:
            if all(needle in text for needle in needles):
                return fault
        return DatabaseFault.UNREACHABLE
    return DatabaseFault.FAILED


def describe_database_error(error: BaseException, url: URL | None = None) -> str:
    """One line about a database failure, for the log: the driver's exception class and its
    first line (it may name the host, port, role or file: never shown to a tenant).

    Never includes the SQL, its parameters, or a password (from ``url`` or any URL in the text).
    """
    original = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    lines = str(original).strip().splitlines()
    first_line = lines[0].strip() if lines else ""
    first_line = _URL_CREDENTIALS.sub(r"\1***@", first_line)
    if url is not None and url.password:
        first_line = first_line.replace(str(url.password), "***")
    name = type(original).__name__
    return f"{name}: {first_line}" if first_line else name


def render_url(url: URL) -> str:
    """The URL for people: password hidden."""
    return url.render_as_string(hide_password=True)


def insert_unless_taken(connection: Connection, statement: Insert) -> bool:
    """Run an INSERT in the caller's transaction; False when a unique key is taken (the
    transaction is then unusable: the caller must end it with an error)."""
    try:
        connection.execute(statement)
    except IntegrityError:
        return False
    return True
