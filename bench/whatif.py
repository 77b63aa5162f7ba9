"""Fleet what-if against the floor of merely streaming the same rows, on SQLite and PostgreSQL.

For each engine: seed a synthetic fleet (default 1,000,000 workspaces), then, round by round
and alternating which goes first, time (a) the floor — streaming every workspace's row out of
the database with the fleet scan's own keyset-paged statement and doing nothing with it — and
(b) ``run_whatif`` with a proposed policy that drops the org rung (the #2608 change), which
groups and counts the fleet in the database (PostgreSQL) or groups the streamed rows in Python
(SQLite), decides each distinct input under both policies, decrypts the sealed-model rows one
by one, and tallies. Medians of the rounds are reported.
Memory: one more pass of each under ``tracemalloc`` (skip with ``--no-memory``); the growth is
the what-if's peak Python heap minus the floor's.

PostgreSQL is seeded in SQL (``INSERT … SELECT FROM generate_series``; only the secrets pass
through Python, to be sealed, and go back by COPY), so 10,000,000 workspaces take minutes, not
hours. ``--database NAME`` keeps that database (and its key ring, beside it in the temporary
folder) and reuses it when it already holds the fleet: ``--workspaces 10000000 --database
llmbilling_whatif_10m --engines postgresql`` seeds once, and reruns only measure. SQLite is
seeded by ``store.seed.seed_fleet``.

The last line is ``whatif_ratio: X.XX`` (what-if time over streaming time, worst engine;
target <= 0.5 on PostgreSQL at 10,000,000 workspaces).

    .venv/bin/python bench/whatif.py [--workspaces 1000000] [--rounds 3]
        [--postgres-url postgresql://postgres@127.0.0.1:5432/test] [--engines sqlite,postgresql]
        [--database NAME] [--seed-only] [--no-memory]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ProgrammingError

from llmbilling import compile_policy
from llmbilling.config.registry import built_in_registry
from llmbilling.core.provisioning import ProxySettings
from llmbilling.core.registry import CompiledRegistry
from llmbilling.service.context import DeploymentInputs, ServiceContext
from llmbilling.service.whatif import proposed_configuration, run_whatif, stream_fleet_rows
from llmbilling.store import migrate
from llmbilling.store.crypto import KeyRing, SecretLocation, SecretScopeName
from llmbilling.store.engine import open_store
from llmbilling.store.seed import WORKSPACES_PER_ORG, seed_fleet

PROXY = ProxySettings(base_url="https://proxy.example/v1", usage_token="bench-token")
DROPS_THE_ORG_RUNG = compile_policy(
    {"rungs": ["workspace_override", "derived_provider", "deployment_default"]}, "p2b.yaml"
)
_PLATFORM_MODELS = ("platform/claude-opus-4-7", "platform:gpt-5.5", "openai/gpt-5.4")
_UNREGISTERED_MODELS = ("totally-made-up", "llama-3.3-70b", "mistral-large-latest")
_ORG_CREDENTIALS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY")
# Absent, clean, differently cased, padded, garbled (as store/seed.py draws them).
_ORG_DEFAULTS = (
    *(None, None, None, None, "platform_managed", "platform_managed", "byok", "byok"),
    *("disabled", "  BYOK ", "Platform_Managed", "byokk", "platform-managed", ""),
)
# h(i, salt): a multiplicative hash of the row number, so choices look random yet are SQL.
_HASH = "((({i})::bigint * 2654435761 + {salt} * 40503) % 4294967296)"


def _context(url: str, key_ring: KeyRing) -> ServiceContext:
    return ServiceContext(
        open_store(url),
        DeploymentInputs(proxy=PROXY, org_default=None),
        built_in_registry(),
        key_ring_loader=lambda: key_ring,
    )


def _sql_text(value: str | None) -> str:
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


def _hash(expression: str, salt: int) -> str:
    return _HASH.format(i=expression, salt=salt)


def _choices(registry: CompiledRegistry) -> list[tuple[str, str | None, str | None, str | None]]:
    """(runtime, model column, sealed MOLECULE_MODEL, a credential of its provider), weighted by
    repetition like store/seed.py: 55% registered models, 15% platform, 10% unregistered, 10%
    only in a sealed secret, 10% none."""
    rows: list[tuple[str, str | None, str | None, str | None]] = []
    for runtime in sorted(registry.runtimes):
        registered = sorted(
            (candidate.rule, candidate.provider)
            for match in registry.tables[runtime].exact.values()
            for candidate in match.candidates
            if candidate.provider != registry.platform_provider
        )
        for index in range(20):
            model, provider = registered[index % len(registered)]
            names = sorted(registry.providers[provider].auth_env)
            credential = names[index % len(names)] if names else None
            if index < 11:
                rows.append((runtime, model, None, credential))
            elif index < 14:
                rows.append((runtime, _PLATFORM_MODELS[index % 3], None, None))
            elif index < 16:
                rows.append((runtime, _UNREGISTERED_MODELS[index % 3], None, None))
            elif index < 18:
                rows.append((runtime, None, model, credential))
            else:
                rows.append((runtime, None, None, None))
    return rows


def _seed_postgresql(url: str, count: int, key_ring: KeyRing) -> None:
    """The fleet in SQL; only the secrets pass through Python, to be sealed."""
    started = time.perf_counter()
    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"))
    org_count = max(1, -(-count // WORKSPACES_PER_ORG))
    with engine.begin() as connection:
        connection.execute(text("CREATE TEMPORARY TABLE bench_choices (n int, runtime text,"
                                " model text, sealed_model text, credential text)"))  # fmt: skip
        choices = _choices(built_in_registry())
        connection.execute(
            text("INSERT INTO bench_choices VALUES (:n, :runtime, :model, :sealed, :credential)"),
            [
                {"n": n, "runtime": r, "model": m, "sealed": s, "credential": c}
                for n, (r, m, s, c) in enumerate(choices)
            ],
        )
        defaults = "ARRAY[" + ", ".join(_sql_text(value) for value in _ORG_DEFAULTS) + "]"
        connection.execute(
            text(f"""
            INSERT INTO organizations (id, name, llm_billing_mode_default, created_at, updated_at)
            SELECT md5('org-' || i)::uuid, 'bench-org-' || lpad(i::text, 8, '0'),
                   ({defaults})[1 + {_hash("i", 1)} % {len(_ORG_DEFAULTS)}], now(), now()
            FROM generate_series(0, {org_count - 1}) AS i""")
        )
        connection.execute(
            text(f"""
            INSERT INTO workspaces (id, org_id, name, runtime, model, llm_billing_mode,
                                    override_expires_at, created_at, updated_at)
            SELECT md5('ws-' || i)::uuid, md5('org-' || ({_hash("i", 2)} % {org_count}))::uuid,
                   'bench-workspace-' || i, c.runtime, c.model,
                   CASE WHEN {_hash("i", 3)} % 100 < 5 THEN 'byok'
                        WHEN {_hash("i", 3)} % 100 < 10 THEN 'platform_managed'
                        WHEN {_hash("i", 3)} % 100 < 12 THEN 'disabled' END,
                   CASE WHEN {_hash("i", 3)} % 100 = 0 THEN now() - interval '1 day' END,
                   now(), now()
            FROM generate_series(0, {count - 1}) AS i
            JOIN bench_choices AS c ON c.n = {_hash("i", 4)} % {len(choices)}""")
        )
        _copy_sealed(
            connection,
            key_ring,
            "workspace",
            f"""SELECT md5('ws-' || i)::uuid, s.name, s.value
            FROM generate_series(0, {count - 1}) AS i
            JOIN bench_choices AS c ON c.n = {_hash("i", 4)} % {len(choices)}
            CROSS JOIN LATERAL (VALUES
                ('MOLECULE_MODEL', c.sealed_model),
                (CASE WHEN {_hash("i", 5)} % 100 < 30 THEN c.credential END, 'bench-credential'),
                (CASE WHEN {_hash("i", 6)} % 100 < 3 AND c.credential IS DISTINCT FROM
                      'MINIMAX_API_KEY' THEN 'MINIMAX_API_KEY' END, 'bench-credential')
            ) AS s(name, value)
            WHERE s.name IS NOT NULL AND s.value IS NOT NULL""",
        )
        credentials = "ARRAY[" + ", ".join(map(_sql_text, _ORG_CREDENTIALS)) + "]"
        _copy_sealed(
            connection,
            key_ring,
            "org",
            f"""SELECT md5('org-' || i)::uuid, s.name, s.value
            FROM generate_series(0, {org_count - 1}) AS i
            CROSS JOIN LATERAL (VALUES
                (CASE WHEN {_hash("i", 7)} % 100 < 50
                      THEN ({credentials})[1 + {_hash("i", 8)} % 3] END, 'bench-credential'),
                (CASE WHEN {_hash("i", 9)} % 100 < 5 THEN 'MODEL' END, 'gpt-5.5')
            ) AS s(name, value)
            WHERE s.name IS NOT NULL""",
        )
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    engine.dispose()
    print(f"  seeded {count:,} workspaces in SQL in {time.perf_counter() - started:.1f}s")


def _copy_sealed(
    connection: Connection, key_ring: KeyRing, scope: SecretScopeName, query: str
) -> None:
    """Seal the (owner, name, value) rows of ``query`` and COPY them into the scope's table."""
    table, owner = (
        ("org_secrets", "org_id") if scope == "org" else ("workspace_secrets", "workspace_id")
    )
    raw: Any = connection.connection.driver_connection
    stamp = datetime.now(UTC)
    columns = f"{owner}, key, ciphertext, key_version, key_fingerprint, updated_at"
    # One connection: fetches and COPYs alternate, a batch at a time (never interleaved).
    with raw.cursor(name=f"bench_{scope}_secrets") as source, raw.cursor() as sink:
        source.execute(query)
        while batch := source.fetchmany(50_000):
            with sink.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for owner_id, name, value in batch:
                    sealed = key_ring.encrypt(value, SecretLocation(scope, owner_id, name))
                    copy.write_row(
                        (owner_id, name, sealed.ciphertext, sealed.key_version,
                         sealed.key_fingerprint, stamp)
                    )  # fmt: skip


def _seed_sqlite(context: ServiceContext, count: int) -> None:
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


def _measure(context: ServiceContext, engine: str, count: int, rounds: int, memory: bool) -> float:
    proposed = proposed_configuration(context, DROPS_THE_ORG_RUNG, None)

    def stream() -> int:
        return sum(1 for _ in stream_fleet_rows(context))

    totals: set[int] = set()

    def whatif() -> int:
        total = run_whatif(context, proposed).total
        totals.add(total)
        return total

    floors: list[float] = []
    whatifs: list[float] = []
    for index in range(rounds):
        order = (stream, whatif) if index % 2 == 0 else (whatif, stream)
        for run in order:
            (floors if run is stream else whatifs).append(_timed(run))
    assert totals == {count}, totals
    floor, decided = statistics.median(floors), statistics.median(whatifs)
    growth = f"{_peak_heap_mb(whatif) - _peak_heap_mb(stream):.1f} MB" if memory else "not measured"
    ratio = decided / floor
    print(
        f"{engine}: stream {floor:7.2f}s ({count / floor:,.0f} rows/s)   what-if {decided:7.2f}s"
        f" ({count / decided:,.0f} workspaces/s)   ratio {ratio:.2f}"
        f"   memory growth {growth}   ({count:,} workspaces, {rounds} rounds, medians)",
        flush=True,
    )
    return ratio


def _stored_count(url: str) -> int | None:
    """How many workspaces a database holds; None when it does not exist or is not migrated."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM workspaces")).scalar_one())
    except ProgrammingError:  # no workspaces table: not migrated yet
        return None
    finally:
        engine.dispose()


@contextmanager
def _postgres_database(admin_url: URL, name: str | None) -> Iterator[tuple[str, bool]]:
    """(url, kept) of the named database (created when missing, kept afterwards) or of a fresh
    one dropped at the end."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    chosen = name or f"llmbilling_whatif_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        found = connection.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": chosen}
        ).first()
        if found is None:
            connection.execute(text(f'CREATE DATABASE "{chosen}"'))
    try:
        yield admin_url.set(database=chosen).render_as_string(hide_password=False), name is not None
    finally:
        if name is None:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{chosen}" WITH (FORCE)'))
        admin.dispose()


def _key_ring(name: str | None) -> KeyRing:
    """A kept database's key ring lives beside it in the temporary folder; else a fresh one."""
    if name is None:
        return KeyRing.parse(KeyRing.new_key_text(1))
    path = Path(tempfile.gettempdir()) / f"{name}.key-ring"
    if not path.exists():
        path.write_text(KeyRing.new_key_text(1))
        path.chmod(0o600)
    return KeyRing.parse(path.read_text())


def _run_postgresql(arguments: argparse.Namespace) -> float:
    admin_url = make_url(arguments.postgres_url).set(drivername="postgresql+psycopg")
    with _postgres_database(admin_url, arguments.database) as (url, kept):
        key_ring = _key_ring(arguments.database)
        stored = _stored_count(url)
        if stored not in (None, 0, arguments.workspaces):
            raise SystemExit(f"{arguments.database} holds {stored:,} workspaces, not the asked")
        context = _context(url, key_ring)
        try:
            migrate.upgrade(context.store)
            if stored == arguments.workspaces:
                print(f"  reusing {arguments.database} ({stored:,} workspaces)", flush=True)
            else:
                _seed_postgresql(url, arguments.workspaces, key_ring)
            if arguments.seed_only:
                return 0.0
            ratio = _measure(
                context, "postgresql", arguments.workspaces, arguments.rounds, arguments.memory
            )
        finally:
            context.close()
        if kept:
            print(f"  kept database {arguments.database}", flush=True)
        return ratio


def _run_sqlite(arguments: argparse.Namespace) -> float:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'whatif.sqlite3'}"
        context = _context(url, KeyRing.parse(KeyRing.new_key_text(1)))
        try:
            migrate.upgrade(context.store)
            _seed_sqlite(context, arguments.workspaces)
            return _measure(
                context, "sqlite", arguments.workspaces, arguments.rounds, arguments.memory
            )
        finally:
            context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workspaces", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument(
        "--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    parser.add_argument(
        "--database", default=None, help="PostgreSQL database to keep and reuse (made if missing)"
    )
    parser.add_argument("--no-memory", dest="memory", action="store_false")
    parser.add_argument(
        "--seed-only",
        action="store_true",
        help="with --database: seed (or find) it, measure nothing",
    )
    arguments = parser.parse_args()
    engines = arguments.engines.split(",")
    ratios: list[float] = []
    if "sqlite" in engines:
        ratios.append(_run_sqlite(arguments))
    if "postgresql" in engines:
        ratios.append(_run_postgresql(arguments))
    if not arguments.seed_only:
        print(f"whatif_ratio: {max(ratios):.2f}")


if __name__ == "__main__":
    main()
