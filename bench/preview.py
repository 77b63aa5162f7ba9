"""A change's preview on a big org against a what-if over that org, and the console's
confirmation page against its plain org page (issue 15, item 6), on SQLite and PostgreSQL.

For each engine: migrate, seed other orgs (``seed_fleet``, --other-workspaces), then one org
of --workspaces workspaces (models registered, platform-namespaced, unregistered and absent;
every tenth with an override; one org credential). Then, round by round and alternating which
goes first, time (a) ``plans.preview_change`` of setting that org's default to ``byok`` against
(b) ``run_whatif`` over that org (``org_id``) with a policy that drops the org rung; then, the
same way, (c) ``plans.propose_plan`` of that change (the preview, the versions it read, the plan
stored) against (b) again. Each round's pair is one ratio, taken moments apart on the same
machine; ``preview_ratio: X.XX`` is the median of the rounds' (a)/(b) (goal <= 1.0) and
``plan_ratio: X.XX`` of their (c)/(b). Times printed are medians.

Then the console, through a real ``llmbilling serve`` subprocess on that database, signed in
with an admin token: (c) the org's plain page ``GET /console/orgs/{id}`` against (d) the
confirmation of that change — ``POST /console/orgs/{id}/default/plan`` (the preview, stored as
a plan) and the ``GET /console/plans/{plan_id}`` it redirects to. Medians in ms and
``console_impact_ratio: X.XX`` ((d) over (c)). The last lines are the worst engine's ratios.

    .venv/bin/python bench/preview.py [--workspaces 100000] [--other-workspaces 20000]
        [--rounds 9] [--engines sqlite,postgresql]
        [--postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import httpx
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from llmbilling import compile_policy
from llmbilling.config.registry import built_in_registry
from llmbilling.core.provisioning import ProxySettings
from llmbilling.service import plans, secrets
from llmbilling.service.context import DeploymentInputs, ServiceContext
from llmbilling.service.tokens import create_token
from llmbilling.service.whatif import proposed_configuration, run_whatif
from llmbilling.store import migrate, tables
from llmbilling.store.crypto import KeyRing
from llmbilling.store.engine import open_store
from llmbilling.store.seed import seed_fleet

PROXY = ProxySettings(base_url="https://proxy.example/v1", usage_token="bench-token")
DROPS_THE_ORG_RUNG = compile_policy(
    {"rungs": ["workspace_override", "derived_provider", "deployment_default"]}, "p2b.yaml"
)
MODELS = (
    "claude-sonnet-4-5",
    "gpt-5.5",
    "platform/claude-opus-4-7",
    "openai/gpt-5.4",
    "totally-made-up",
    None,
)
OVERRIDES = ("byok", "platform_managed", "disabled")
BATCH = 5_000


@dataclass(frozen=True)
class Figures:
    previews: Sequence[float]
    whatifs: Sequence[float]
    plans: Sequence[float]
    whatifs_beside_plans: Sequence[float]
    org_pages: Sequence[float]
    confirmations: Sequence[float]

    @property
    def preview_ratio(self) -> float:
        return _paired_ratio(self.previews, self.whatifs)

    @property
    def plan_ratio(self) -> float:
        return _paired_ratio(self.plans, self.whatifs_beside_plans)

    @property
    def console_ratio(self) -> float:
        return _paired_ratio(self.confirmations, self.org_pages)

    @property
    def confirmation_ms(self) -> float:
        return statistics.median(self.confirmations) * 1000


def _round_ratios(firsts: Sequence[float], seconds: Sequence[float]) -> list[float]:
    return [first / second for first, second in zip(firsts, seconds, strict=True)]


def _paired_ratio(firsts: Sequence[float], seconds: Sequence[float]) -> float:
    """The median of each round's ratio."""
    return statistics.median(_round_ratios(firsts, seconds))


def _per_round(firsts: Sequence[float], seconds: Sequence[float]) -> str:
    return " ".join(f"{ratio:.2f}" for ratio in _round_ratios(firsts, seconds))


def _ms(times: Sequence[float]) -> str:
    return f"{statistics.median(times) * 1000:,.0f} ms"


def _context(url: str, key_ring_text: str) -> ServiceContext:
    key_ring = KeyRing.parse(key_ring_text)
    return ServiceContext(
        open_store(url),
        DeploymentInputs(proxy=PROXY, org_default=None),
        built_in_registry(),
        key_ring_loader=lambda: key_ring,
    )


def _seed(context: ServiceContext, big: int, others: int) -> UUID:
    started = time.perf_counter()
    stamp = datetime.now(UTC)
    org_id = uuid.uuid4()
    with context.store.engine.begin() as connection:
        if others:
            seed_fleet(
                connection,
                workspace_count=others,
                seed=7,
                registry=built_in_registry(),
                key_ring=context.key_ring,
                stamp=stamp,
            )
        connection.execute(
            insert(tables.organizations).values(
                id=org_id, name="Big Org", created_at=stamp, updated_at=stamp
            )
        )
        for start in range(0, big, BATCH):
            connection.execute(
                insert(tables.workspaces),
                [
                    {
                        "id": uuid.uuid4(),
                        "org_id": org_id,
                        "name": f"big-{number}",
                        "runtime": "claude-code" if number % 3 else "codex",
                        "model": MODELS[number % len(MODELS)],
                        "llm_billing_mode": OVERRIDES[number % 3] if number % 10 == 0 else None,
                        "created_at": stamp,
                        "updated_at": stamp,
                    }
                    for number in range(start, min(big, start + BATCH))
                ],
            )
    secrets.set_secret(context, "org", org_id, "ANTHROPIC_API_KEY", "sk-bench-value")
    seconds = time.perf_counter() - started
    print(f"  seeded {big:,} + {others:,} workspaces in {seconds:.1f}s", flush=True)
    return org_id


def _timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def _interleaved(
    first: Callable[[], object], second: Callable[[], object], rounds: int
) -> tuple[list[float], list[float]]:
    """The times of ``first`` and ``second`` per round, each round alternating which runs
    first."""
    firsts: list[float] = []
    seconds: list[float] = []
    for round_number in range(rounds):
        if round_number % 2:
            seconds.append(_timed(second))
            firsts.append(_timed(first))
        else:
            firsts.append(_timed(first))
            seconds.append(_timed(second))
    return firsts, seconds


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextmanager
def _served(url: str, key_ring_text: str, folder: Path) -> Iterator[str]:
    """``llmbilling serve`` on this database (the bench's proxy), until the block ends."""
    port = _free_port()
    environment = {
        **{key: value for key, value in os.environ.items() if not key.startswith("LLMBILLING_")},
        "LLMBILLING_DATABASE_URL": url,
        "LLMBILLING_SECRET_KEYS": key_ring_text,
        "MOLECULE_LLM_BASE_URL": PROXY.base_url or "",
        "MOLECULE_LLM_USAGE_TOKEN": PROXY.usage_token or "",
    }
    script = Path(sys.executable).parent / "llmbilling"
    with (folder / "serve.log").open("w") as log:
        server = subprocess.Popen(
            [str(script), "serve", "--port", str(port)],
            env=environment,
            cwd=folder,
            stdout=log,
            stderr=log,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            else:
                raise SystemExit(f"llmbilling serve did not start: see {folder / 'serve.log'}")
            yield base
        finally:
            server.terminate()
            server.wait(timeout=30)


def _console_figures(
    context: ServiceContext, url: str, key_ring_text: str, org_id: UUID, rounds: int
) -> tuple[list[float], list[float]]:
    token = create_token(context, scope="admin").token
    with (
        tempfile.TemporaryDirectory() as folder,
        _served(url, key_ring_text, Path(folder)) as base,
        httpx.Client(base_url=base, headers={"Origin": base}, timeout=300) as client,
    ):
        login = client.post("/console/login", data={"token": token})
        assert login.status_code == 303, login.text

        def org_page() -> None:
            assert client.get(f"/console/orgs/{org_id}").status_code == 200

        def confirmation() -> None:
            proposed = client.post(f"/console/orgs/{org_id}/default/plan", data={"mode": "byok"})
            assert proposed.status_code == 303, proposed.text
            assert client.get(proposed.headers["location"]).status_code == 200

        org_page()
        confirmation()  # warm both
        return _interleaved(org_page, confirmation, rounds)


def _measure(url: str, arguments: argparse.Namespace, engine: str) -> Figures:
    key_ring_text = KeyRing.new_key_text(1)
    context = _context(url, key_ring_text)
    try:
        migrate.upgrade(context.store)
        org_id = _seed(context, arguments.workspaces, arguments.other_workspaces)
        change = plans.org_default_change(org_id, "byok")
        proposed = proposed_configuration(context, DROPS_THE_ORG_RUNG, None)

        def whatif() -> object:
            return run_whatif(context, proposed, org_id=org_id)

        previews, whatifs = _interleaved(
            lambda: plans.preview_change(context, change), whatif, arguments.rounds
        )
        planned, whatifs_beside_plans = _interleaved(
            lambda: plans.propose_plan(context, change), whatif, arguments.rounds
        )
        org_pages, confirmations = _console_figures(
            context, url, key_ring_text, org_id, arguments.rounds
        )
    finally:
        context.close()
    figures = Figures(previews, whatifs, planned, whatifs_beside_plans, org_pages, confirmations)
    print(
        f"  {engine}: preview {_ms(previews)}, what-if {_ms(whatifs)};"
        f" preview_ratio: {figures.preview_ratio:.2f}"
        f" (per round {_per_round(previews, whatifs)})",
        flush=True,
    )
    print(
        f"  {engine}: plan {_ms(planned)}, what-if {_ms(whatifs_beside_plans)};"
        f" plan_ratio: {figures.plan_ratio:.2f}",
        flush=True,
    )
    print(
        f"  {engine}: org page {_ms(org_pages)}, confirmation (plan + page) {_ms(confirmations)};"
        f" console_impact_ratio: {figures.console_ratio:.2f}",
        flush=True,
    )
    return figures


def _run_sqlite(arguments: argparse.Namespace) -> Figures:
    with tempfile.TemporaryDirectory() as folder:
        return _measure(f"sqlite:///{Path(folder) / 'preview.sqlite3'}", arguments, "sqlite")


def _run_postgresql(arguments: argparse.Namespace) -> Figures:
    admin_url = make_url(arguments.postgres_url).set(drivername="postgresql+psycopg")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"llmbilling_preview_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = admin_url.set(database=name).render_as_string(hide_password=False)
        return _measure(url, arguments, "postgresql")
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workspaces", type=int, default=100_000)
    parser.add_argument("--other-workspaces", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument(
        "--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    arguments = parser.parse_args()
    engines = arguments.engines.split(",")
    figures: list[Figures] = []
    if "sqlite" in engines:
        print("sqlite", flush=True)
        figures.append(_run_sqlite(arguments))
    if "postgresql" in engines:
        print("postgresql", flush=True)
        figures.append(_run_postgresql(arguments))
    print(f"console_impact_ms: {max(f.confirmation_ms for f in figures):,.0f}")
    print(f"console_impact_ratio: {max(f.console_ratio for f in figures):.2f}")
    print(f"plan_ratio: {max(f.plan_ratio for f in figures):.2f}")
    print(f"preview_ratio: {max(f.preview_ratio for f in figures):.2f}")


if __name__ == "__main__":
    main()
