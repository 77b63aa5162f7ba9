"""What-if background jobs: progress, report, failure, retention."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from tests.store.db_fixtures import ContextFactory

from llmbilling import compile_policy
from llmbilling.core.whatif import DangerClass
from llmbilling.errors import (
    StoreUnavailableError,
    WhatIfQuotaExceededError,
    WhatIfRateLimitedError,
)
from llmbilling.service import admin, audit, whatif_jobs
from llmbilling.service.audit import AuditContext
from llmbilling.service.context import ServiceContext
from llmbilling.service.whatif import (
    count_workspaces,
    current_configuration,
    proposed_configuration,
)
from llmbilling.service.whatif_jobs import JobState, WhatIfJob, WhatIfJobs, WhatIfLimits
from llmbilling.store.engine import Store

P2B = compile_policy(
    {"rungs": ["workspace_override", "derived_provider", "deployment_default"]}, "p2b.yaml"
)
FINISHED = (JobState.SUCCEEDED, JobState.FAILED)


@pytest.fixture
def jobs(context: ServiceContext) -> Iterator[WhatIfJobs]:
    table = WhatIfJobs(context, WhatIfLimits(keep_per_org=3))
    yield table
    table.close()


def finished(jobs: WhatIfJobs, job: WhatIfJob) -> WhatIfJob:
    """Poll until the job ends (a generous bound, not a timing assertion)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        current = jobs.get(job.id)
        assert current is not None
        if current.state in FINISHED:
            return current
        time.sleep(0.02)
    raise AssertionError(f"job {job.id} did not finish")


def fresh_org(context: ServiceContext, size: int) -> uuid.UUID:
    org = admin.create_org(context, "saas-org")
    admin.set_org_default(context, org.id, "platform_managed")
    for _ in range(size):
        admin.create_workspace(context, org.id, runtime="claude-code", model="kimi-for-coding")
    return org.id


def test_a_job_runs_in_the_background_and_keeps_its_report(
    context: ServiceContext, jobs: WhatIfJobs
) -> None:
    org_id = fresh_org(context, 4)
    started = jobs.start(proposed_configuration(context, P2B, None), org_id=org_id)
    assert started.state is JobState.QUEUED
    done = finished(jobs, started)
    assert (done.state, done.done, done.total) == (JobState.SUCCEEDED, 4, 4)
    report = jobs.report(started.id)
    assert report is not None
    assert report.dangers[DangerClass.TO_BYOK_WITHOUT_CREDENTIAL] == 4


def test_starting_on_an_unreachable_store_raises_and_queues_nothing(
    make_context: ContextFactory,
) -> None:
    down = make_context(database_url="postgresql://postgres@127.0.0.1:9/none")
    table = WhatIfJobs(down)
    try:
        with pytest.raises(StoreUnavailableError):
            table.start(current_configuration(down), org_id=None)
        assert table.jobs() == []
    finally:
        table.close()


def test_a_store_failing_during_the_run_fails_the_job_with_its_error_code(
    context: ServiceContext, make_context: ContextFactory
) -> None:
    # Writes (the audit entry of the start) reach the real store; the fleet scan reads from a
    # server that is not there.
    down = make_context(database_url="postgresql://postgres@127.0.0.1:9/none")
    split = ServiceContext(
        Store(context.store.url, context.store.engine, down.store.read_engine),
        context.deployment,
        context.registry,
        key_ring_loader=lambda: context.key_ring,
    )
    table = WhatIfJobs(split)
    try:
        job = finished(table, table.start(current_configuration(split), org_id=None))
    finally:
        table.close()
    assert job.state is JobState.FAILED
    assert job.error_code == "STORE_UNAVAILABLE"
    assert table.report(job.id) is None


def test_starting_a_job_is_audited(context: ServiceContext, jobs: WhatIfJobs) -> None:
    org_id = fresh_org(context, 1)
    job = jobs.start(
        proposed_configuration(context, P2B, None),
        org_id=org_id,
        audit_context=AuditContext(actor="token:test", request_id="req-whatif-1"),
    )
    finished(jobs, job)
    entries = audit.list_entries(context, org_id=org_id)
    started = [entry for entry in entries if entry.action == "whatif.started"]
    assert len(started) == 1
    assert started[0].actor == "token:test"
    assert started[0].after == {
        "job_id": str(job.id),
        "policy_version": P2B.version,
        "registry_version": context.registry.version if context.registry else None,
    }


def test_only_the_newest_jobs_are_kept(context: ServiceContext, jobs: WhatIfJobs) -> None:
    org_id = fresh_org(context, 1)
    started = [
        finished(jobs, jobs.start(current_configuration(context), org_id=org_id)) for _ in range(5)
    ]
    assert [job.id for job in jobs.jobs()] == [job.id for job in reversed(started[-3:])]
    assert jobs.get(started[0].id) is None


# --- per-org bounds --------------------------------------------------------------------------


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Jobs wait at their first step until the gate opens, so queued jobs stay queued."""
    opened = threading.Event()

    def gated(context: ServiceContext, org_id: uuid.UUID | None) -> int:
        opened.wait(timeout=60)
        return count_workspaces(context, org_id)

    monkeypatch.setattr(whatif_jobs, "count_workspaces", gated)
    yield opened
    opened.set()


def test_an_org_at_its_quota_is_refused_while_another_org_still_starts(
    context: ServiceContext, gate: threading.Event
) -> None:
    table = WhatIfJobs(context, WhatIfLimits(active_per_org=2))
    try:
        org_a, org_b = fresh_org(context, 1), fresh_org(context, 1)

        def start(org_id: uuid.UUID) -> WhatIfJob:
            return table.start(current_configuration(context), org_id=org_id)

        own = [start(org_a), start(org_a)]
        with pytest.raises(WhatIfQuotaExceededError) as refused:
            start(org_a)
        other = start(org_b)
        gate.set()
        assert refused.value.code == "WHATIF_QUOTA_EXCEEDED"
        assert refused.value.retry_after > 0
        assert all(finished(table, job).state is JobState.SUCCEEDED for job in [*own, other])
        assert finished(table, start(org_a)).state is JobState.SUCCEEDED  # room again
    finally:
        table.close()


def test_an_org_running_many_jobs_never_evicts_another_orgs(context: ServiceContext) -> None:
    table = WhatIfJobs(context, WhatIfLimits(keep_per_org=2))
    try:
        org_a, org_b = fresh_org(context, 1), fresh_org(context, 1)
        kept = finished(table, table.start(current_configuration(context), org_id=org_b))
        own = [
            finished(table, table.start(current_configuration(context), org_id=org_a))
            for _ in range(4)
        ]
        assert [job.id for job in table.jobs()] == [own[3].id, own[2].id, kept.id]
        assert table.report(kept.id) is not None
    finally:
        table.close()


def test_the_start_rate_refuses_then_admits_once_the_clock_moves(
    context: ServiceContext,
) -> None:
    clock = Clock()
    # One start every 10 s, two at once after a pause; no quota in the way.
    limits = WhatIfLimits(active_per_org=10, starts_per_minute=6, start_burst=2)
    table = WhatIfJobs(context, limits, clock=clock)
    try:
        org_a, org_b = fresh_org(context, 1), fresh_org(context, 1)
        for _ in range(2):
            table.start(current_configuration(context), org_id=org_a)
        with pytest.raises(WhatIfRateLimitedError) as refused:
            table.start(current_configuration(context), org_id=org_a)
        assert (refused.value.code, refused.value.retry_after) == ("WHATIF_RATE_LIMITED", 10)
        table.start(current_configuration(context), org_id=org_b)  # another org's own rate
        clock.now += 10
        table.start(current_configuration(context), org_id=org_a)
    finally:
        table.close()


def test_a_start_that_fails_costs_the_org_no_start(make_context: ContextFactory) -> None:
    down = make_context(database_url="postgresql://postgres@127.0.0.1:9/none")
    table = WhatIfJobs(down, WhatIfLimits(start_burst=1), clock=Clock())
    try:
        for _ in range(2):
            with pytest.raises(StoreUnavailableError):
                table.start(current_configuration(down), org_id=None)
    finally:
        table.close()
