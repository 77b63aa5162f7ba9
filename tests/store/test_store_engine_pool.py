"""The store's pools keep the connections they open: concurrent use does not make a server
open and close a connection every few requests (a new PostgreSQL backend each time)."""

from __future__ import annotations

import threading
from contextlib import ExitStack

from sqlalchemy import Engine, event, text

from llmbilling.store.engine import POOL_SIZE, open_store


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


def test_connections_given_back_are_kept_not_reopened(engine_url: str) -> None:
    store = open_store(engine_url)
    # SQLite's write connections each take the write lock (BEGIN IMMEDIATE): not 15 at once.
    engines = [store.read_engine] + ([store.engine] if store.dialect == "postgresql" else [])
    try:
        for engine in engines:
            connects = _count_connects(engine)
            for _ in range(3):
                _use_at_once(engine, POOL_SIZE)
            assert connects[0] == POOL_SIZE
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

    threads = [threading.Thread(target=reader) for _ in range(2 * POOL_SIZE)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        store.close()
    assert failures == []
    assert connects[0] <= POOL_SIZE
