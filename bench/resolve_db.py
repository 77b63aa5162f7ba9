"""Resolve-by-id against a bare primary-key SELECT of the workspace row, on the same database.

For SQLite (a temp file) and PostgreSQL (a temp database), seed a fleet, then time, interleaved
call by call on the same ids, (a) ``resolve_workspace`` — the one-statement read plus the pure
core — and (b) a bare ``SELECT * FROM workspaces WHERE id = ?`` through the same engine and
connection pool, and (c) the physical floor: the same primary-key SELECT on the raw driver
(``sqlite3``; psycopg without SQLAlchemy), on one connection opened once, its row fetched as
the driver gives it. Then, on an event loop, (d) the decision GET's read as ``llmbilling
serve`` runs it (``read_decision_on_loop`` on the context's own decision cache, the change feed
started, as ``serve`` starts it: after a workspace's first read its decision inputs come from
memory, on SQLite after the ``PRAGMA data_version`` check that every such read makes, on
PostgreSQL after none) against (c) again, interleaved; the raw driver's connection only reads,
so it moves no data_version, as in a steady state without writes. Reports medians, how many of
the sampled workspaces the cache held at the end, and the ratios; the last three lines are the
worst
engine's ``db_overhead_ratio`` ((a) / (b)), ``raw_floor_ratio_store_read`` ((a) / (c)) and
``raw_floor_ratio`` ((d) / (c)), target <= 1.5.

    .venv/bin/python bench/resolve_db.py [--workspaces 100000] [--calls 20000]
        [--postgres-url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from uuid import UUID

import psycopg
from sqlalchemy import bindparam, create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from llmbilling.config.registry import built_in_registry
from llmbilling.core.provisioning import ProxySettings
from llmbilling.service.context import DeploymentInputs, ServiceContext
from llmbilling.service.resolve import read_decision_on_loop, resolve_workspace
from llmbilling.store import migrate
from llmbilling.store.crypto import KeyRing
from llmbilling.store.engine import open_store
from llmbilling.store.seed import seed_fleet
from llmbilling.store.tables import workspaces

PROXY = ProxySettings(base_url="https://proxy.example/v1", usage_token="bench-token")
BARE_PRIMARY_KEY_SELECT = select(workspaces).where(
    workspaces.c.id == bindparam("workspace_id", type_=workspaces.c.id.type)
)


def _context(url: str, key_ring: KeyRing) -> ServiceContext:
    return ServiceContext(
        open_store(url),
        DeploymentInputs(proxy=PROXY, org_default=None),
        built_in_registry(),
        key_ring_loader=lambda: key_ring,
    )


def _seed(context: ServiceContext, count: int) -> list[UUID]:
    migrate.upgrade(context.store)
    started = time.perf_counter()
    with context.store.engine.begin() as connection:
        seed_fleet(
            connection,
            workspace_count=count,
            seed=7,
            registry=built_in_registry(),
            key_ring=context.key_ring,
            stamp=datetime.now(UTC),
        )
        ids = list(connection.execute(select(workspaces.c.id)).scalars())
        if connection.dialect.name == "postgresql":
            connection.execute(text("ANALYZE"))
    print(f"  seeded {count} workspaces in {time.perf_counter() - started:.1f}s")
    return ids


class RawSelect(Protocol):
    def __call__(self, workspace_id: UUID) -> object: ...


class _RawDriver:
    """The floor: the primary-key SELECT on the bare driver, one connection kept open."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            assert parsed.database is not None
            lite = sqlite3.connect(parsed.database)
            # Bound as SQLAlchemy's Uuid stores it on SQLite: 32 hex digits.
            self.select: RawSelect = lambda workspace_id: lite.execute(
                "SELECT * FROM workspaces WHERE id = ?", (workspace_id.hex,)
            ).fetchone()
            self.close = lite.close
            return
        conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        # psycopg prepares a statement server-side after its fifth execution (the default).
        pg = psycopg.connect(conninfo, autocommit=True)
        self.select = lambda workspace_id: pg.execute(
            "SELECT * FROM workspaces WHERE id = %s", (workspace_id,)
        ).fetchone()
        self.close = pg.close


def _measure(
    context: ServiceContext, raw: _RawDriver, ids: list[UUID], calls: int
) -> tuple[float, float, float]:
    """Median microseconds of (resolve, bare select, raw-driver select), interleaved call by
    call on the same ids."""
    rng = random.Random(11)
    sample = [rng.choice(ids) for _ in range(calls)]
    read_engine = context.store.read_engine

    def bare(workspace_id: UUID) -> None:
        with read_engine.connect() as connection:
            connection.execute(BARE_PRIMARY_KEY_SELECT, {"workspace_id": workspace_id}).first()

    def resolve(workspace_id: UUID) -> None:
        resolve_workspace(context, workspace_id)

    paths: tuple[RawSelect, ...] = (resolve, bare, raw.select)
    for workspace_id in sample[:500]:  # warm every path: pools, compiled cache, page cache
        for path in paths:
            path(workspace_id)
    times: tuple[list[int], ...] = ([], [], [])
    clock = time.perf_counter_ns
    for index, workspace_id in enumerate(sample):
        # Rotate which goes first so none always runs on a cache another warmed.
        for which in (index % 3, (index + 1) % 3, (index + 2) % 3):
            started = clock()
            paths[which](workspace_id)
            times[which].append(clock() - started)
    resolve_us, bare_us, raw_us = (statistics.median(found) / 1000 for found in times)
    return resolve_us, bare_us, raw_us


def _sample(ids: list[UUID], calls: int) -> list[UUID]:
    """The served read's ids, the same at every call."""
    rng = random.Random(13)
    return [rng.choice(ids) for _ in range(calls)]


async def _measure_served(
    context: ServiceContext, raw: _RawDriver, ids: list[UUID], calls: int
) -> tuple[float, float, float]:
    """Median microseconds of (the decision GET's read, raw-driver select), interleaved call
    by call on the same ids, on this event loop, once every sampled workspace has been read
    (steady state); and of the first read of each (which reads the store)."""
    sample = _sample(ids, calls)
    clock = time.perf_counter_ns
    try:
        first_times: list[int] = []
        for workspace_id in dict.fromkeys(sample):
            raw.select(workspace_id)
            started = clock()
            await read_decision_on_loop(context, workspace_id)
            first_times.append(clock() - started)
        served_times: list[int] = []
        raw_times: list[int] = []
        for index, workspace_id in enumerate(sample):
            for which in (0, 1) if index % 2 == 0 else (1, 0):
                started = clock()
                if which == 0:
                    await read_decision_on_loop(context, workspace_id)
                    served_times.append(clock() - started)
                else:
                    raw.select(workspace_id)
                    raw_times.append(clock() - started)
    finally:
        await context.close_loop_reader()
    served_us, raw_us, first_us = (
        statistics.median(found) / 1000 for found in (served_times, raw_times, first_times)
    )
    return served_us, raw_us, first_us


@dataclass(frozen=True, slots=True)
class Ratios:
    to_sqlalchemy_select: float
    store_read_to_raw_select: float
    served_to_raw_select: float


def _run(engine: str, url: str, count: int, calls: int) -> Ratios:
    print(f"{engine}:")
    context = _context(url, KeyRing.parse(KeyRing.new_key_text(1)))
    try:
        ids = _seed(context, count)
        raw = _RawDriver(url)
        try:
            resolve_us, bare_us, raw_us = _measure(context, raw, ids, calls)
            context.change_feed.start()
            while not context.change_feed.connected:
                time.sleep(0.01)
            served_us, served_raw_us, first_us = asyncio.run(
                _measure_served(context, raw, ids, calls)
            )
            serving = context.decision_cache.serving
            sampled = set(_sample(ids, calls))
            kept = sum(context.decision_cache.state(w) is not None for w in sampled)
        finally:
            raw.close()
    finally:
        context.close()
    ratios = Ratios(resolve_us / bare_us, resolve_us / raw_us, served_us / served_raw_us)
    print(
        f"  median resolve_workspace {resolve_us:8.1f} us   bare PK select {bare_us:8.1f} us"
        f"   raw-driver PK select {raw_us:8.1f} us   ({calls} calls each)"
    )
    print(
        f"  resolve_workspace / SQLAlchemy's select {ratios.to_sqlalchemy_select:.2f}"
        f"   / the raw driver's {ratios.store_read_to_raw_select:.2f}"
    )
    source = (
        f"decision inputs in memory: {kept} of {len(sampled)} sampled workspaces kept"
        if serving
        else "store read on the loop, every call: the cache is not serving"
    )
    print(
        f"  median decision GET read {served_us:8.1f} us ({source}; a workspace's first"
        f" read {first_us:.1f} us)   raw-driver PK select {served_raw_us:8.1f} us"
        f"   ratio {ratios.served_to_raw_select:.2f}"
    )
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspaces", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument(
        "--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    arguments = parser.parse_args()

    ratios: list[Ratios] = []
    with tempfile.TemporaryDirectory() as folder:
        sqlite_url = f"sqlite:///{Path(folder) / 'bench.sqlite3'}"
        ratios.append(_run("sqlite", sqlite_url, arguments.workspaces, arguments.calls))

    admin_url = make_url(arguments.postgres_url).set(drivername="postgresql+psycopg")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"llmbilling_bench_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except SQLAlchemyError as error:  # report, and carry on with SQLite alone
        print(f"postgresql: skipped ({type(error).__name__}: {str(error).splitlines()[0]})")
    else:
        try:
            database_url = admin_url.set(database=name).render_as_string(hide_password=False)
            ratios.append(_run("postgresql", database_url, arguments.workspaces, arguments.calls))
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
    print(f"db_overhead_ratio: {max(r.to_sqlalchemy_select for r in ratios):.2f}")
    print(f"raw_floor_ratio_store_read: {max(r.store_read_to_raw_select for r in ratios):.2f}")
    print(f"raw_floor_ratio: {max(r.served_to_raw_select for r in ratios):.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
