"""Fleet what-if against the floor of merely streaming the same rows, on SQLite and PostgreSQL.

For each engine: seed a synthetic fleet (default 1,000,000 workspaces), then, round by round
and alternating which goes first, time (a) the floor — streaming every workspace's row out of
the database with the what-if's own keyset-paged statement and doing nothing with it — and
(b) ``run_whatif`` with a proposed policy that drops the org rung (the #2608 change), which
decides every workspace under both policies and tallies. Medians of the rounds are reported.
Memory: one more pass of each under ``tracemalloc``; the growth is the what-if's peak Python
heap minus the floor's.

The last line is ``whatif_ratio: X.XX`` (what-if time over streaming time, worst engine;
target <= 2.0).

    .venv/bin/python bench/whatif.py [--workspaces 1000000] [--rounds 3]
        [--postgres-url postgresql://postgres@127.0.0.1:5432/test] [--engines sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from llmbilling import compile_policy
from llmbilling.config.registry import built_in_registry
from llmbilling.core.provisioning import ProxySettings
from llmbilling.service.context import DeploymentInputs, ServiceContext
from llmbilling.service.whatif import proposed_configuration, run_whatif, stream_fleet_rows
from llmbilling.store import migrate
from llmbilling.store.crypto import KeyRing
from llmbilling.store.engine import open_store
from llmbilling.store.seed import seed_fleet

PROXY = ProxySettings(base_url="https://proxy.example/v1", usage_token="bench-token")
DROPS_THE_ORG_RUNG = compile_policy(
    {"rungs": ["workspace_override", "derived_provider", "deployment_default"]}, "p2b.yaml"
)


def _context(url: str, key_ring: KeyRing) -> ServiceContext:
    return ServiceContext(
        open_store(url),
        DeploymentInputs(proxy=PROXY, org_default=None),
        built_in_registry(),
        key_ring_loader=lambda: key_ring,
    )


def _seed(context: ServiceContext, count: int) -> None:
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
        if connection.dialect.name == "postgresql":
            connection.execute(text("ANALYZE"))
    print(f"  seeded {count:,} workspaces in {time.perf_counter() - started:.1f}s", flush=True)


def _timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def _peak_heap_mb(run: Callable[[], object]) -> float:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def _measure(engine: str, url: str, count: int, rounds: int) -> float:
    print(f"{engine}:", flush=True)
    context = _context(url, KeyRing.parse(KeyRing.new_key_text(1)))
    try:
        _seed(context, count)
        proposed = proposed_configuration(context, DROPS_THE_ORG_RUNG, None)

        def stream() -> int:
            return sum(1 for _ in stream_fleet_rows(context))

        def whatif() -> int:
            return run_whatif(context, proposed).total

        assert stream() == whatif() == count
        floors: list[float] = []
        whatifs: list[float] = []
        for index in range(rounds):
            order = (stream, whatif) if index % 2 == 0 else (whatif, stream)
            for run in order:
                (floors if run is stream else whatifs).append(_timed(run))
        floor, decided = statistics.median(floors), statistics.median(whatifs)
        growth = _peak_heap_mb(whatif) - _peak_heap_mb(stream)
    finally:
        context.close()
    ratio = decided / floor
    print(
        f"  stream {floor:6.2f}s ({count / floor:,.0f} rows/s)   what-if {decided:6.2f}s"
        f" ({count / decided:,.0f} workspaces/s)   ratio {ratio:.2f}"
        f"   memory growth {growth:.1f} MB   ({rounds} rounds, medians)",
        flush=True,
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workspaces", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument(
        "--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    arguments = parser.parse_args()
    engines = arguments.engines.split(",")
    ratios: list[float] = []
    if "sqlite" in engines:
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{Path(folder) / 'whatif.sqlite3'}"
            ratios.append(_measure("sqlite", url, arguments.workspaces, arguments.rounds))
    if "postgresql" in engines:
        admin_url = make_url(arguments.postgres_url).set(drivername="postgresql+psycopg")
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        name = f"llmbilling_whatif_{uuid.uuid4().hex[:12]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = admin_url.set(database=name).render_as_string(hide_password=False)
            ratios.append(_measure("postgresql", url, arguments.workspaces, arguments.rounds))
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    print(f"whatif_ratio: {max(ratios):.2f}")


if __name__ == "__main__":
    main()
