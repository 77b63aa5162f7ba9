"""The store's pools: they keep the connections they open (concurrent use does not make a
server open and close a connection every few requests), a process holds at most the
configured total across its three pools (writes, reads, the event-loop reader), the defaults
let three processes share PostgreSQL's default ``max_connections``, and connections nobody
uses are closed after the idle setting."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from contextlib import ExitStack

import pytest
from sqlalchemy import Engine, create_engine, event, func, select, text
from sqlalchemy.engine import make_url
from tests.store.db_fixtures import (
    KEY_RING_TEXT,
    POSTGRES_ADMIN_URL,
    PostgresServer,
)

from llmbilling.config.settings import Settings
from llmbilling.service.context import ServiceContext
from llmbilling.store import migrate
from llmbilling.store.engine import PoolSettings, open_store
from llmbilling.store.loop_reader import open_loop_reader

DEFAULTS = PoolSettings()
# PostgreSQL's defaults: max_connections = 100, superuser_reserved_connections = 3.
POSTGRES_DEFAULT_CONNECTIONS = 100 - 3
BURST_THREADS_PER_POOL = 12
BURST_READS_ON_THE_LOOP = 40
SHRINK_DEADLINE_SECONDS = 30.0


def _count_connects(engine: Engine) -> list[int]:
    counted = [0]

    def connected(*_args: object) -> None:
        counted[0] += 1

    event.listen(engine, "connect", connected)
    return counted


def _use_at_once(engine: Engine, count: int) -> None:
    """Hold ``count`` connections at the same time, then give them all back."""
    with ExitStack() as stack:
        for _ in range(count):
            stack.enter_context(engine.connect()).execute(text("SELECT 1"))


def test_the_default_pools_of_three_processes_fit_postgres_default_max_connections() -> None:
    assert DEFAULTS.per_process == 3 * (DEFAULTS.size + DEFAULTS.max_overflow)
    assert 3 * DEFAULTS.per_process <= POSTGRES_DEFAULT_CONNECTIONS


def test_the_pool_settings_come_from_the_deployment_settings(
    monkeypatch: pytest.MonkeyPatch, engine_url: str
) -> None:
    monkeypatch.setenv("LLMBILLING_DB_POOL_SIZE", "3")
    monkeypatch.setenv("LLMBILLING_DB_MAX_OVERFLOW", "2")
    monkeypatch.setenv("LLMBILLING_DB_POOL_IDLE_SECONDS", "7.5")
    settings = Settings(_env_file=None, database_url=engine_url, secret_keys=KEY_RING_TEXT)
    with ServiceContext.from_settings(settings) as context:
        pool = context.store.pool
        assert (pool.size, pool.max_overflow, pool.idle_seconds) == (3, 2, 7.5)
        assert context.store.read_engine.pool.size() == 3  # type: ignore[attr-defined]


def test_connections_given_back_are_kept_not_reopened(engine_url: str) -> None:
    store = open_store(engine_url)
    # SQLite's write connections each take the write lock (BEGIN IMMEDIATE): not 10 at once.
    engines = [store.read_engine] + ([store.engine] if store.dialect == "postgresql" else [])
    try:
        for engine in engines:
            connects = _count_connects(engine)
            for _ in range(3):
                _use_at_once(engine, DEFAULTS.size)
            assert connects[0] == DEFAULTS.size
    finally:
        store.close()


def test_threads_beyond_the_pool_wait_for_a_kept_connection(engine_url: str) -> None:
    store = open_store(engine_url)
    engine = store.read_engine
    connects = _count_connects(engine)
    failures: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(20):
                with engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
        except BaseException as error:  # pragma: no cover - reported below
            failures.append(error)

    threads = [threading.Thread(target=reader) for _ in range(2 * DEFAULTS.size)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        store.close()
    assert failures == []
    assert connects[0] <= DEFAULTS.size


# --- PostgreSQL: what the server sees ----------------------------------------------------------


class _Activity:
    """The server's count of this test's connections (``pg_stat_activity`` by the pools'
    application name), sampled on a thread of its own while a burst runs."""

    def __init__(self, application_name: str) -> None:
        self._engine = create_engine(
            make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+psycopg"),
            isolation_level="AUTOCOMMIT",
        )
        self._pattern = f"{application_name}:%"
        self.highest = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample)

    def count(self) -> int:
        with self._engine.connect() as connection:
            found: int = connection.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE :p"),
                {"p": self._pattern},
            ).scalar_one()
        return found

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.highest = max(self.highest, self.count())
            time.sleep(0.01)

    def __enter__(self) -> _Activity:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.highest = max(self.highest, self.count())

    def close(self) -> None:
        self._engine.dispose()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A migrated PostgreSQL database: ``pg_stat_activity`` is what these tests count by."""
    url = postgres_server.create_database()
    store = open_store(url)
    try:
        migrate.upgrade(store)
    finally:
        store.close()
    return url


@pytest.fixture
def activity_name() -> str:
    return f"llmbilling-pool-test-{uuid.uuid4().hex[:12]}"


def _burst(store_url: str, pool: PoolSettings) -> None:
    """Many more concurrent users than connections, on each of the three pools at once."""
    store = open_store(store_url, pool=pool)
    failures: list[BaseException] = []

    def on_engine(engine: Engine) -> None:
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT pg_sleep(0.05)"))
        except BaseException as error:  # pragma: no cover - reported below
            failures.append(error)

    async def on_loop() -> None:
        reader = open_loop_reader(store)
        statement = select(func.pg_sleep(0.05))
        try:
            await asyncio.gather(
                *(reader.first(statement, {}) for _ in range(BURST_READS_ON_THE_LOOP))
            )
        finally:
            await reader.close()

    threads = [
        threading.Thread(target=on_engine, args=(engine,))
        for engine in (store.engine, store.read_engine)
        for _ in range(BURST_THREADS_PER_POOL)
    ]
    threads.append(threading.Thread(target=lambda: asyncio.run(on_loop())))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    assert failures == []


def test_a_burst_never_holds_more_connections_than_the_configured_total(
    postgres_url: str, activity_name: str
) -> None:
    pool = PoolSettings(size=2, max_overflow=1, idle_seconds=0, application_name=activity_name)
    activity = _Activity(activity_name)
    try:
        with activity:
            _burst(postgres_url, pool)
    finally:
        activity.close()
    assert 0 < activity.highest <= pool.per_process


def test_connections_idle_longer_than_the_setting_are_closed(
    postgres_url: str, activity_name: str
) -> None:
    pool = PoolSettings(size=3, max_overflow=0, idle_seconds=1, application_name=activity_name)
    store = open_store(postgres_url, pool=pool)
    activity = _Activity(activity_name)
    try:
        _use_at_once(store.read_engine, pool.size)
        _use_at_once(store.engine, pool.size)
        assert activity.count() == 2 * pool.size
        deadline = time.monotonic() + SHRINK_DEADLINE_SECONDS
        while activity.count() > 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert activity.count() == 0
        # A pooled connection the server closed is replaced at its next use.
        with store.transaction() as connection:
            assert connection.execute(text("SELECT 1")).scalar_one() == 1
        with store.connection() as connection:
            assert connection.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        store.close()
        activity.close()
