"""A database outage under load: PostgreSQL stops under a running ``llmbilling serve``, stays
down a few seconds, and comes back.

The promise (docs/API.md, spec §6): the server process stays up; the decision GET never answers
5xx (during the outage it answers the ``constant_fallback`` decision with its error); writes
answer 503 ``STORE_UNAVAILABLE`` problems; once the database is back the same process recovers
by itself, within a bounded time, with no restart. Recovery time is measured from the moment
the restarted database accepts connections (``pg_ctl start -w`` returns) to the first
successful PUT and the first decision read from the store, whichever comes later.

The scenario runs once per test run, shared by every xdist worker that needs it, on a
throwaway cluster this test owns (never the shared one on port 5432). Threads send decision
GETs and override PUTs throughout; every request records the phase at its start and at its
answer. Requests that straddle a phase change are held to the rules of every phase
(no 5xx on the decision route, no 500 anywhere) but not to those of either side.
Two cycles run: ``pg_ctl stop -m fast``, then ``-m immediate`` (a crash: the restart runs
recovery). ``LLMBILLING_LONG_RUN=1`` runs six cycles, each 10 s down with 10 s of load between
(about 2 minutes of load).
Run with ``-s`` to see the counts by phase, route and answer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from tests.reliability.load import (
    DECISION_GET,
    OVERRIDE_PUT,
    Phases,
    Sample,
    ThreadLoad,
    count_by_phase,
    format_counts,
)
from tests.reliability.long_run import LONG_RUN
from tests.reliability.servers import (
    ServerProcess,
    ThrowawayCluster,
    run_once,
    seed_store,
)

BEFORE_SECONDS = 10.0 if LONG_RUN else 2.0
OUTAGE_SECONDS = 10.0 if LONG_RUN else 2.5
AFTER_SECONDS = 10.0 if LONG_RUN else 1.5
# pg_ctl stop modes, one per cycle: fast (clients disconnected, clean shutdown), immediate
# (no shutdown at all: the restart runs crash recovery).
STOP_MODES = ("fast", "immediate") * (3 if LONG_RUN else 1)
RECOVERY_DEADLINE_SECONDS = 30.0
PHASES = ("before", "stopping", "outage", "restarting", "recovering", "after")


@dataclass(frozen=True)
class OutageRun:
    samples: list[Sample]
    pids: list[int | None]  # the server's pid when the load started and after each phase
    alive: list[bool]  # the server process was running, checked after each phase
    recovery_seconds: list[float | None]  # per cycle; None: not recovered by the deadline
    unhandled_errors: int  # server log lines of an unhandled exception

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> OutageRun:
        fields: dict[str, Any] = json.loads(text)
        return cls(**{**fields, "samples": [Sample(**sample) for sample in fields["samples"]]})

    def in_phase(self, phase: str, route: str) -> list[Sample]:
        return [s for s in self.samples if s.phase == phase and s.route == route]


def _recovered_since(samples: Sequence[Sample], restarted: float) -> tuple[float, float] | None:
    """When the first PUT succeeded and the first decision was read from the store again,
    counting only requests sent after the database was back; None until both happened."""
    after = [sample for sample in samples if sample.started >= restarted]
    writes = [s.ended for s in after if s.route == OVERRIDE_PUT and s.status == 200]
    reads = [s.ended for s in after if s.route == DECISION_GET and s.normal_decision]
    if not writes or not reads:
        return None
    return min(writes), min(reads)


def _has_recovered(restarted: float, samples: Sequence[Sample]) -> bool:
    return _recovered_since(samples, restarted) is not None


def _drive(
    cluster: ThrowawayCluster, server: ServerProcess, load: ThreadLoad, phases: Phases
) -> OutageRun:
    pids, alive, recoveries = [server.pid], [server.alive()], []

    def check() -> None:
        pids.append(server.pid)
        alive.append(server.alive())

    load.start()
    try:
        time.sleep(BEFORE_SECONDS)
        for mode in STOP_MODES:
            phases.enter("stopping")
            cluster.stop(mode)
            phases.enter("outage")
            time.sleep(OUTAGE_SECONDS)
            check()
            phases.enter("restarting")
            cluster.start()
            restarted = phases.enter("recovering")
            load.wait_until(partial(_has_recovered, restarted), RECOVERY_DEADLINE_SECONDS)
            times = _recovered_since(load.samples(), restarted)
            recoveries.append(None if times is None else max(times) - restarted)
            phases.enter("after")
            time.sleep(AFTER_SECONDS)
            check()
    finally:
        load.stop()
    unhandled = server.log_lines_with('"unhandled_error"', "Traceback")
    return OutageRun(load.samples(), pids, alive, recoveries, unhandled)


def _scenario(tmp_path_factory: pytest.TempPathFactory) -> OutageRun:
    with ThrowawayCluster.running() as cluster:
        seeded = seed_store(cluster.url, workspaces=4)
        workdir: Path = tmp_path_factory.mktemp("outage")
        server = ServerProcess(cluster.url, workdir)
        server.start()
        try:
            phases = Phases("before")
            load = ThreadLoad(server.base_url, seeded.token, seeded.workspace_ids, phases)
            return _drive(cluster, server, load, phases)
        finally:
            server.stop()


@pytest.fixture(scope="module")
def outage_run(tmp_path_factory: pytest.TempPathFactory) -> OutageRun:
    run = OutageRun.from_json(
        run_once(
            tmp_path_factory, "reliability-outage", lambda: _scenario(tmp_path_factory).to_json()
        )
    )
    print(f"\n{format_counts(count_by_phase(run.samples), PHASES)}")
    print(f"recovery seconds per cycle: {run.recovery_seconds}; server pids: {set(run.pids)}")
    return run


def test_the_server_process_stays_up_through_the_outage_and_is_never_restarted(
    outage_run: OutageRun,
) -> None:
    assert all(outage_run.alive)
    assert len(set(outage_run.pids)) == 1


def test_the_server_logs_no_unhandled_exception(outage_run: OutageRun) -> None:
    assert outage_run.unhandled_errors == 0


def test_the_decision_route_never_answers_5xx_in_any_phase(outage_run: OutageRun) -> None:
    reads = [s for s in outage_run.samples if s.route == DECISION_GET]

    failed = [(s.phase, s.label) for s in reads if s.status is None or s.status >= 500]

    assert reads
    assert failed == []


def test_no_request_on_any_route_gets_an_internal_error(outage_run: OutageRun) -> None:
    assert [(s.phase, s.route, s.label) for s in outage_run.samples if s.status == 500] == []


def test_during_the_outage_decisions_answer_constant_fallback_with_the_read_error(
    outage_run: OutageRun,
) -> None:
    reads = outage_run.in_phase("outage", DECISION_GET)

    assert reads
    assert {s.label for s in reads} == {"200 constant_fallback OVERRIDE_READ_FAILED"}


def test_during_the_outage_writes_answer_503_store_unavailable_problems(
    outage_run: OutageRun,
) -> None:
    writes = outage_run.in_phase("outage", OVERRIDE_PUT)

    assert writes
    assert {(s.label, s.content_type) for s in writes} == {
        ("503 STORE_UNAVAILABLE", "application/problem+json")
    }


def test_before_the_outage_every_request_succeeds_from_the_store(outage_run: OutageRun) -> None:
    reads = outage_run.in_phase("before", DECISION_GET)
    writes = outage_run.in_phase("before", OVERRIDE_PUT)

    assert reads
    assert writes
    assert all(s.normal_decision for s in reads)
    assert {s.status for s in writes} == {200}


def test_the_same_process_recovers_by_itself_within_the_deadline(outage_run: OutageRun) -> None:
    assert len(outage_run.recovery_seconds) == len(STOP_MODES)
    assert None not in outage_run.recovery_seconds


def test_once_recovered_decisions_come_from_the_store_and_writes_succeed_again(
    outage_run: OutageRun,
) -> None:
    reads = outage_run.in_phase("after", DECISION_GET)
    writes = outage_run.in_phase("after", OVERRIDE_PUT)

    assert reads
    assert writes
    assert [s.label for s in reads if not s.normal_decision] == []
    assert [s.label for s in writes if s.status != 200] == []
