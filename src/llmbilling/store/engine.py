"""Engines for the two supported databases, and the sanitizing of database errors.

A :class:`Store` holds two engines on the same database: ``engine`` for writes (one
transaction per use case) and ``read_engine`` in autocommit, so a read is exactly its one
statement: no BEGIN before it, no ROLLBACK after it.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection as Connection  # the handle store functions take
from sqlalchemy import Dialect, Engine, Insert, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.engine.interfaces import BindTyping
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, SQLAlchemyError

from llmbilling.errors import InvalidInputError, StoreUnavailableError

POSTGRES_CONNECT_TIMEOUT_SECONDS = 5
SQLITE_BUSY_TIMEOUT_MS = 5000
# Each pool keeps every connection it opens, up to this many (SQLAlchemy's default cap of
# 5 kept + 10 overflow). Overflow connections are closed when given back, so under concurrent
# requests a server opened and closed a connection every few requests: a new PostgreSQL
# backend, or SQLite's connection PRAGMAs, each time.
POOL_SIZE = 15
_KEEP_EVERY_CONNECTION: dict[str, Any] = {"pool_size": POOL_SIZE, "max_overflow": 0}
_URL_CREDENTIALS = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


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
            raise StoreUnavailableError(describe_database_error(error, self.url)) from None

    @contextmanager
    def translated_errors(self) -> Iterator[None]:
        """The store's door: database failures inside become :class:`StoreUnavailableError`
        (driver class and first line, passwords removed); nothing else is touched."""
        try:
            yield
        except SQLAlchemyError as error:
            raise StoreUnavailableError(describe_database_error(error, self.url)) from None


def open_store(database_url: str, *, pool_pre_ping: bool = True) -> Store:
    """Create the engines (no connection is made yet). A SQLite file's folder is created.

    ``pool_pre_ping`` replaces connections the server dropped while they sat in the pool;
    tests of dropped connections turn it off to see the failure.
    """
    url = normalize_database_url(database_url)
    if url.get_backend_name() == "sqlite":
        return Store(url, _sqlite_engine(url), _sqlite_engine(url, autocommit=True))
    return Store(
        url,
        _postgres_engine(url, pool_pre_ping=pool_pre_ping),
        _postgres_engine(url, pool_pre_ping=pool_pre_ping, autocommit=True),
    )


def _postgres_engine(url: URL, *, pool_pre_ping: bool, autocommit: bool = False) -> Engine:
    options: dict[str, Any] = {
        **_KEEP_EVERY_CONNECTION,
        "pool_pre_ping": pool_pre_ping,
        "connect_args": {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS},
    }
    if autocommit:
        options["isolation_level"] = "AUTOCOMMIT"
    return create_engine(url, **options)


def _sqlite_engine(url: URL, *, autocommit: bool = False) -> Engine:
    options: dict[str, Any] = {}
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        options.update(_KEEP_EVERY_CONNECTION)  # a file database: SQLAlchemy's QueuePool
        folder = Path(database).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise InvalidInputError(
                "database_url", f"cannot create the folder {str(folder)!r}: {error.strerror}"
            ) from None
    if autocommit:
        options["isolation_level"] = "AUTOCOMMIT"
    engine = create_engine(url, **options)
    event.listen(engine, "connect", _configure_sqlite_connection)
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


def describe_database_error(error: BaseException, url: URL | None = None) -> str:
    """One line about a database failure: the driver's exception class and its first line.

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
