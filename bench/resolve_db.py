"""Resolve-by-id against a bare primary-key SELECT of the workspace row, on the same database.

For SQLite (a temp file) and PostgreSQL (a temp database), seed a fleet, then time, interleaved
call by call on the same ids, (a) ``resolve_workspace`` — the one-statement read plus the pure
core — and (b) a bare ``SELECT * FROM workspaces WHERE id = ?`` through the same engine and
connection pool. Reports medians; the last line is the worst engine's ratio:
``db_overhead_ratio: X.XX`` (target <= 1.5).

    .venv/bin/python bench/resolve_db.py [--workspaces 100000] [--calls 20000]
        [--postgres-url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from sqlalchemy import bindparam, create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from llmbilling.config.registry import built_in_registry
from llmbilling.core.provisioning import ProxySettings
from llmbilling.service.context import DeploymentInputs, ServiceContext
from llmbilling.service.resolve import resolve_workspace
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


def _measure(context: ServiceContext, ids: list[UUID], calls: int) -> tuple[float, float]:
    """Median microseconds of (resolve, bare select), interleaved on the same ids."""
    rng = random.Random(11)
    sample = [rng.choice(ids) for _ in range(calls)]
    read_engine = context.store.read_engine
    for workspace_id in sample[:500]:  # warm both paths: pools, compiled cache, page cache
        resolve_workspace(context, workspace_id)
        with read_engine.connect() as connection:
            connection.execute(BARE_PRIMARY_KEY_SELECT, {"workspace_id": workspace_id}).first()
    resolve_times: list[int] = []
    bare_times: list[int] = []
    clock = time.perf_counter_ns
    for index, workspace_id in enumerate(sample):
        # Alternate which goes first so neither always runs on a cache the other warmed.
        for which in (0, 1) if index % 2 == 0 else (1, 0):
            started = clock()
            if which == 0:
                resolve_workspace(context, workspace_id)
                resolve_times.append(clock() - started)
            else:
                with read_engine.connect() as connection:
                    connection.execute(
                        BARE_PRIMARY_KEY_SELECT, {"workspace_id": workspace_id}
                    ).first()
                bare_times.append(clock() - started)
    return statistics.median(resolve_times) / 1000, statistics.median(bare_times) / 1000


def _run(engine: str, url: str, count: int, calls: int) -> float:
    print(f"{engine}:")
    context = _context(url, KeyRing.parse(KeyRing.new_key_text(1)))
    try:
        ids = _seed(context, count)
        resolve_us, bare_us = _measure(context, ids, calls)
    finally:
        context.close()
    ratio = resolve_us / bare_us
    print(
        f"  median resolve_workspace {resolve_us:8.1f} us   bare PK select {bare_us:8.1f} us"
        f"   ratio {ratio:.2f}   ({calls} calls each)"
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspaces", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument(
        "--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    arguments = parser.parse_args()

    ratios: list[float] = []
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
    print(f"db_overhead_ratio: {max(ratios):.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
