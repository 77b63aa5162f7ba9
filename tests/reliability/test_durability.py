"""Durability of acknowledged override writes across ``kill -9`` of the server.

Four writer processes each loop: read a workspace's decision and its ``ETag``, PUT a mode with
``If-Match: <that tag>`` and a unique ``X-Request-ID``, read again and retry on 412. Three
workspaces, so the writers collide. Mid-stream the ``llmbilling serve`` subprocess is killed
with SIGKILL and started again; the writers carry on; then they stop and the store is read
directly (and through the restarted server).

What is provable, per workspace, from what the writers saw and what the store holds:

- Every write commits its audit entry in its own transaction and bumps ``row_version`` by one,
  and a compare-and-set write based on tag ``w<N>`` can only commit while the row is at N. So
  the committed override writes, in audit id order, are based on N = initial, initial+1, ... and
  the k-th entry is the write that was based on ``w<initial+k>``.
- A 2xx means committed (the answer is sent after the commit). No answer at all means it may or
  may not have committed: each writer has at most one PUT in flight, so at most one such write
  per writer per kill. A refused connection, a 412 or any other answer means nothing was written.

``LLMBILLING_LONG_RUN=1`` kills the server six times, 10 s of writes apart (about 70 s of load
per engine). Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from tests.reliability.load import TOKEN_ENV, WriteAttempt, decision_path, read_attempts
from tests.reliability.long_run import LONG_RUN
from tests.reliability.servers import (
    SeededStore,
    ServerProcess,
    run_once,
    seed_store,
    skip_or_fail,
)
from tests.store.db_fixtures import POSTGRES_ADMIN_URL, PostgresServer

from llmbilling.store.engine import open_store
from llmbilling.store.tables import audit_log, workspaces

REPO_ROOT = Path(__file__).resolve().parents[2]
WRITERS = 4
WORKSPACES = 3
KILLS = 6 if LONG_RUN else 1
SEGMENT_SECONDS = 10.0 if LONG_RUN else 1.5
MIN_ACKNOWLEDGED_PER_SEGMENT = 5
SEGMENT_DEADLINE_SECONDS = 60.0
WRITERS_EXIT_SECONDS = 60.0
OVERRIDE_ACTIONS = ("workspace.override_set", "workspace.override_cleared")


@dataclass(frozen=True)
class AuditedWrite:
    id: int
    request_id: str
    workspace_id: str
    before: str | None
    after: str | None


@dataclass(frozen=True)
class DurabilityRun:
    engine: str
    attempts: list[WriteAttempt]
    kills: list[float]  # wall-clock time of each kill -9
    initial_versions: dict[str, int]
    stored: dict[str, tuple[int, str | None]]  # workspace → (row_version, override)
    audited: dict[str, list[AuditedWrite]]  # workspace → its override writes in id order
    served: dict[str, dict[str, Any]]  # workspace → the restarted server's decision

    @property
    def acknowledged(self) -> list[WriteAttempt]:
        return [attempt for attempt in self.attempts if attempt.acknowledged]

    @property
    def audited_request_ids(self) -> Counter[str]:
        return Counter(entry.request_id for entries in self.audited.values() for entry in entries)

    @property
    def committed_unacknowledged(self) -> list[AuditedWrite]:
        acknowledged = {attempt.request_id for attempt in self.acknowledged}
        return [
            entry
            for entries in self.audited.values()
            for entry in entries
            if entry.request_id not in acknowledged
        ]

    def segments(self) -> list[int]:
        """Acknowledged writes between consecutive kills (the last one: after the last kill)."""
        bounds = [float("-inf"), *self.kills, float("inf")]
        return [
            sum(low <= attempt.ended < high for attempt in self.acknowledged)
            for low, high in itertools.pairwise(bounds)
        ]

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> DurabilityRun:
        fields: dict[str, Any] = json.loads(text)
        return cls(
            engine=fields["engine"],
            attempts=[WriteAttempt(**attempt) for attempt in fields["attempts"]],
            kills=fields["kills"],
            initial_versions=fields["initial_versions"],
            stored={ws: (version, mode) for ws, (version, mode) in fields["stored"].items()},
            audited={
                ws: [AuditedWrite(**entry) for entry in entries]
                for ws, entries in fields["audited"].items()
            },
            served=fields["served"],
        )

    def report(self) -> str:
        outcomes = dict(sorted(Counter(a.outcome for a in self.attempts).items()))
        audited = self.audited_request_ids
        found = sum(audited[attempt.request_id] > 0 for attempt in self.acknowledged)
        in_flight = outcomes.get("no_response", 0)
        return (
            f"{self.engine}: {len(self.kills)} kill -9; PUT outcomes {outcomes};"
            f" acknowledged {len(self.acknowledged)} (per segment {self.segments()}),"
            f" found in the audit log {found};"
            f" committed without acknowledgement {len(self.committed_unacknowledged)}"
            f" (of {in_flight} PUTs left without an answer)"
        )


# --- the scenario ----------------------------------------------------------------------------


@contextmanager
def _database(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh SQLite file, or a uniquely named database on the shared PostgreSQL (dropped)."""
    if engine == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('durability') / 'store.sqlite3'}"
        return
    server = PostgresServer(POSTGRES_ADMIN_URL)
    problem = server.check()
    if problem is not None:
        skip_or_fail(
            f"PostgreSQL not reachable at {server.admin_url.render_as_string()}: {problem}"
        )
    try:
        yield server.create_database()
    finally:
        server.drop_all()


def _start_writers(
    seeded: SeededStore, base_url: str, workdir: Path
) -> list[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        TOKEN_ENV: seeded.token,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    budget = (KILLS + 1) * (SEGMENT_SECONDS + SEGMENT_DEADLINE_SECONDS)
    workspaces_arg = ",".join(str(workspace) for workspace in seeded.workspace_ids)
    writers = []
    for number in range(WRITERS):
        command = [sys.executable, "-m", "tests.reliability.load", "--base-url", base_url]
        command += ["--workspaces", workspaces_arg, "--writer", str(number)]
        command += ["--out", str(workdir / f"writer{number}.jsonl")]
        command += ["--stop-file", str(workdir / "stop"), "--seconds", str(budget)]
        with (workdir / f"writer{number}.log").open("ab") as log:
            writers.append(
                subprocess.Popen(
                    command,
                    env=env,
                    cwd=REPO_ROOT,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    return writers


def _let_writes_flow(outputs: list[Path], writers: list[subprocess.Popen[bytes]]) -> None:
    """Wait until writes are being acknowledged (bounded), then let them flow SEGMENT_SECONDS."""
    since = time.time()
    deadline = time.monotonic() + SEGMENT_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        fresh = [a for a in read_attempts(outputs) if a.acknowledged and a.ended >= since]
        if len(fresh) >= MIN_ACKNOWLEDGED_PER_SEGMENT:
            break
        assert all(w.poll() is None for w in writers), "a writer process exited early"
        time.sleep(0.05)
    time.sleep(SEGMENT_SECONDS)


def _drive(seeded: SeededStore, server: ServerProcess, workdir: Path) -> list[float]:
    outputs = [workdir / f"writer{n}.jsonl" for n in range(WRITERS)]
    writers = _start_writers(seeded, server.base_url, workdir)
    kills = []
    try:
        for _ in range(KILLS):
            _let_writes_flow(outputs, writers)
            kills.append(time.time())
            server.kill()
            time.sleep(0.2)  # the writers meet a closed port for a moment
            server.start()
        _let_writes_flow(outputs, writers)
        (workdir / "stop").touch()
        for writer in writers:
            assert writer.wait(timeout=WRITERS_EXIT_SECONDS) == 0, "a writer process failed"
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.wait()
    return kills


def _read_store(
    database_url: str, workspace_ids: list[str]
) -> tuple[dict[str, tuple[int, str | None]], dict[str, list[AuditedWrite]]]:
    store = open_store(database_url)
    try:
        with store.read_engine.connect() as connection:
            rows = connection.execute(
                select(workspaces.c.id, workspaces.c.row_version, workspaces.c.llm_billing_mode)
            ).all()
            entries = (
                connection.execute(
                    select(audit_log)
                    .where(audit_log.c.action.in_(OVERRIDE_ACTIONS))
                    .order_by(audit_log.c.id)
                )
                .mappings()
                .all()
            )
    finally:
        store.close()
    stored = {str(row.id): (row.row_version, row.llm_billing_mode) for row in rows}
    audited: dict[str, list[AuditedWrite]] = {workspace: [] for workspace in workspace_ids}
    for entry in entries:
        audited[str(entry["workspace_id"])].append(
            AuditedWrite(
                entry["id"],
                entry["request_id"],
                str(entry["workspace_id"]),
                (entry["before"] or {}).get("llm_billing_mode"),
                (entry["after"] or {}).get("llm_billing_mode"),
            )
        )
    return stored, audited


def _scenario(engine: str, tmp_path_factory: pytest.TempPathFactory) -> DurabilityRun:
    with _database(engine, tmp_path_factory) as database_url:
        seeded = seed_store(database_url, workspaces=WORKSPACES)
        ids = [str(workspace) for workspace in seeded.workspace_ids]
        initial, _ = _read_store(database_url, ids)
        workdir: Path = tmp_path_factory.mktemp("durability-run")
        server = ServerProcess(database_url, workdir)
        server.start()
        try:
            kills = _drive(seeded, server, workdir)
            headers = {"Authorization": f"Bearer {seeded.token}"}
            with httpx.Client(base_url=server.base_url, headers=headers, timeout=10.0) as client:
                served = {ws: client.get(decision_path(ws)).json() for ws in ids}
        finally:
            server.stop()
        stored, audited = _read_store(database_url, ids)
    return DurabilityRun(
        engine=engine,
        attempts=read_attempts([workdir / f"writer{n}.jsonl" for n in range(WRITERS)]),
        kills=kills,
        initial_versions={workspace: initial[workspace][0] for workspace in ids},
        stored={workspace: stored[workspace] for workspace in ids},
        audited=audited,
        served=served,
    )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def durability_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> DurabilityRun:
    engine: str = request.param
    text = run_once(
        tmp_path_factory,
        f"reliability-durability-{engine}",
        lambda: _scenario(engine, tmp_path_factory).to_json(),
    )
    run = DurabilityRun.from_json(text)
    print(f"\n{run.report()}")
    return run


# --- the rules -------------------------------------------------------------------------------


def test_writes_are_acknowledged_before_and_after_every_kill(durability_run: DurabilityRun) -> None:
    assert len(durability_run.kills) == KILLS
    assert all(count > 0 for count in durability_run.segments())


def test_every_acknowledged_write_is_in_the_audit_log_exactly_once(
    durability_run: DurabilityRun,
) -> None:
    audited = durability_run.audited_request_ids

    assert [a.request_id for a in durability_run.acknowledged if audited[a.request_id] != 1] == []


def test_no_two_acknowledged_writes_were_based_on_the_same_etag(
    durability_run: DurabilityRun,
) -> None:
    # An ETag names a version of one resource: the same tag on two workspaces is two versions.
    based_on = Counter((a.workspace_id, a.if_match) for a in durability_run.acknowledged)

    assert [version for version, count in based_on.items() if count > 1] == []


def test_every_committed_write_is_audited_and_moved_the_row_one_version(
    durability_run: DurabilityRun,
) -> None:
    for workspace, entries in durability_run.audited.items():
        row_version, _ = durability_run.stored[workspace]
        assert len(entries) == row_version - durability_run.initial_versions[workspace]


def test_the_audit_log_of_each_workspace_is_an_unbroken_chain_of_before_and_after(
    durability_run: DurabilityRun,
) -> None:
    for entries in durability_run.audited.values():
        befores = [entry.before for entry in entries]
        afters = [None] + [entry.after for entry in entries[:-1]]
        assert befores == afters


def test_each_acknowledged_write_is_logged_at_the_place_its_etag_named(
    durability_run: DurabilityRun,
) -> None:
    misplaced = []
    for attempt in durability_run.acknowledged:
        entries = durability_run.audited[attempt.workspace_id]
        place = attempt.base_version - durability_run.initial_versions[attempt.workspace_id]
        found = entries[place] if 0 <= place < len(entries) else None
        if found is None or (found.request_id, found.after) != (attempt.request_id, attempt.mode):
            misplaced.append(attempt.request_id)

    assert misplaced == []


def test_the_stored_override_is_the_last_committed_write(durability_run: DurabilityRun) -> None:
    for workspace, entries in durability_run.audited.items():
        assert entries
        assert durability_run.stored[workspace][1] == entries[-1].after


def test_only_unacknowledged_writes_can_follow_the_last_acknowledged_one(
    durability_run: DurabilityRun,
) -> None:
    """The stored value is the last acknowledged write by ETag order, unless writes left
    without an answer landed after it."""
    acknowledged = {attempt.request_id for attempt in durability_run.acknowledged}
    for workspace, entries in durability_run.audited.items():
        mine = [a for a in durability_run.acknowledged if a.workspace_id == workspace]
        assert mine
        last = max(mine, key=lambda attempt: attempt.base_version)
        place = last.base_version - durability_run.initial_versions[workspace]
        later = entries[place + 1 :]
        assert [entry.request_id for entry in later if entry.request_id in acknowledged] == []
        if not later:
            assert durability_run.stored[workspace][1] == last.mode


def test_writes_committed_without_an_answer_were_in_flight_when_the_server_died(
    durability_run: DurabilityRun,
) -> None:
    in_flight = {a.request_id for a in durability_run.attempts if a.outcome == "no_response"}
    committed = durability_run.committed_unacknowledged

    assert {entry.request_id for entry in committed} <= in_flight
    assert len(committed) <= WRITERS * len(durability_run.kills)


def test_refused_rejected_and_failed_writes_left_no_trace(durability_run: DurabilityRun) -> None:
    audited = durability_run.audited_request_ids
    no_write = [
        a for a in durability_run.attempts if not a.acknowledged and a.outcome != "no_response"
    ]

    assert no_write
    assert [(a.request_id, a.outcome) for a in no_write if audited[a.request_id]] == []


def test_the_restarted_server_serves_the_stored_overrides(durability_run: DurabilityRun) -> None:
    for workspace, (_, override) in durability_run.stored.items():
        served = durability_run.served[workspace]
        assert (served["source"], served["mode"]) == ("workspace_override", override)
