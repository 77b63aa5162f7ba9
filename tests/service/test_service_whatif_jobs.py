"""What-if background jobs: progress, report, failure, retention; stored, so seen by every
replica (here: two job tables over one store), run again when their worker is lost."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import update
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
from llmbilling.service.whatif_jobs import (
    JobLease,
    JobState,
    WhatIfJob,
    WhatIfJobs,
    WhatIfLimits,
)
from llmbilling.store import jobs as job_rows
from llmbilling.store.engine import Store
from llmbilling.store.tables import whatif_jobs as job_table

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
    report = jobs.report_document(started.id)
    assert report is not None
    assert report["dangers"][DangerClass.TO_BYOK_WITHOUT_CREDENTIAL] == 4


def test_starting_on_an_unreachable_store_raises_and_queues_nothing(
    make_context: ContextFactory,
) -> None:
    down = make_context(database_url="postgresql://postgres@127.0.0.1:9/none")
    table = WhatIfJobs(down)
    try:
        with pytest.raises(StoreUnavailableError):
            table.start(current_configuration(down), org_id=None)
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
    assert table.report_document(job.id) is None


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
    kept = [job.id for job in jobs.jobs() if job.org_id == org_id]
    assert kept == [job.id for job in reversed(started[-3:])]
    assert jobs.get(started[0].id) is None


# --- per-org bounds --------------------------------------------------------------------------


class Clock:
    """A UTC clock the test moves by hand (starting at the real time, so leases taken under
    it expire as they would)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
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
        listed = [job.id for job in table.jobs() if job.org_id in (org_a, org_b)]
        assert listed == [own[3].id, own[2].id, kept.id]
        assert table.report_document(kept.id) is not None
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
        clock.now += timedelta(seconds=10)
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


# --- stored jobs: every replica's, surviving their worker -------------------------------------


def test_a_job_started_through_one_table_is_read_and_listed_through_another(
    context: ServiceContext, jobs: WhatIfJobs
) -> None:
    org_id = fresh_org(context, 2)
    other_replica = WhatIfJobs(context)
    try:
        started = jobs.start(
            proposed_configuration(context, P2B, None),
            org_id=org_id,
            audit_context=AuditContext(actor="token:asker"),
        )
        seen = finished(other_replica, started)
        assert (seen.state, seen.done, seen.requested_by) == (
            JobState.SUCCEEDED,
            2,
            "token:asker",
        )
        assert started.id in [job.id for job in other_replica.jobs()]
        report = other_replica.report_document(started.id)
        assert report is not None
        assert report["total"] == 2
    finally:
        other_replica.close()


def queued_job(context: ServiceContext, org_id: uuid.UUID) -> uuid.UUID:
    """A job row as a start writes it, with no worker of this test running yet."""
    job_id = uuid.uuid4()
    with context.store.transaction() as connection:
        job_rows.insert_job(
            connection,
            job_id=job_id,
            org_id=org_id,
            created_at=datetime.now(UTC),
            requested_by="token:test",
            proposed_policy=P2B.to_document(),
            proposed_registry=None,
        )
    return job_id


def cut_off(context: ServiceContext, job_id: uuid.UUID) -> None:
    """The row as a worker's claim leaves it, the worker lost at once: its lease has run out.
    (Written directly: a claim takes the oldest queued job, maybe another test's.)"""
    with context.store.transaction() as connection:
        connection.execute(
            update(job_table)
            .where(job_table.c.id == job_id)
            .values(
                state="running",
                lease_owner="lost-worker",
                lease_expires_at=datetime.now(UTC) - timedelta(seconds=1),
                attempts=1,
            )
        )


def test_a_job_whose_worker_was_lost_runs_again_from_the_start(context: ServiceContext) -> None:
    org_id = fresh_org(context, 3)
    job_id = queued_job(context, org_id)
    cut_off(context, job_id)
    table = WhatIfJobs(context, lease=JobLease(seconds=30, poll_seconds=0.05, attempts=2))
    try:
        table.open()
        job = table.get(job_id)
        assert job is not None
        done = finished(table, job)
    finally:
        table.close()
    assert (done.state, done.done, done.attempts) == (JobState.SUCCEEDED, 3, 2)
    report = table.report_document(job_id)
    assert report is not None
    assert report["proposed"]["policy"] == P2B.version


def test_a_job_whose_worker_was_lost_on_its_last_attempt_fails_with_the_reason(
    context: ServiceContext,
) -> None:
    job_id = queued_job(context, fresh_org(context, 1))
    cut_off(context, job_id)
    table = WhatIfJobs(context, lease=JobLease(seconds=30, poll_seconds=0.05, attempts=1))
    try:
        table.open()
        job = table.get(job_id)
        assert job is not None
        done = finished(table, job)
    finally:
        table.close()
    assert (done.state, done.error_code, done.attempts) == (
        JobState.FAILED,
        "WHATIF_INTERRUPTED",
        1,
    )
    assert done.error_message is not None
    assert "start it again" in done.error_message
    assert table.report_document(job_id) is None


def test_a_worker_that_stops_gives_its_running_job_back_to_another(
    context: ServiceContext, gate: threading.Event
) -> None:
    first, second = WhatIfJobs(context), WhatIfJobs(context)
    try:
        started = first.start(current_configuration(context), org_id=fresh_org(context, 1))
        running(first, started)
        stopping = threading.Thread(target=first.close)
        stopping.start()
        gate.set()  # the scan goes on to its first progress report, sees the stop, gives back
        stopping.join()
        given_back = first.get(started.id)
        assert given_back is not None
        assert given_back.state is JobState.QUEUED
        second.open()
        done = finished(second, started)
    finally:
        first.close()
        second.close()
    assert (done.state, done.attempts) == (JobState.SUCCEEDED, 1)


def running(jobs: WhatIfJobs, job: WhatIfJob) -> None:
    """Poll until the job is claimed by a worker (a generous bound, not a timing assertion)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        current = jobs.get(job.id)
        assert current is not None
        if current.state is JobState.RUNNING:
            return
        time.sleep(0.02)
    raise AssertionError(f"job {job.id} was never claimed")


def test_the_quota_counts_the_jobs_another_table_started(
    context: ServiceContext, gate: threading.Event
) -> None:
    limits = WhatIfLimits(active_per_org=1)
    first, second = WhatIfJobs(context, limits), WhatIfJobs(context, limits)
    try:
        org_id = fresh_org(context, 1)
        started = first.start(current_configuration(context), org_id=org_id)
        with pytest.raises(WhatIfQuotaExceededError):
            second.start(current_configuration(context), org_id=org_id)
        gate.set()
        finished(second, started)
        finished(second, second.start(current_configuration(context), org_id=org_id))
    finally:
        first.close()
        second.close()


def test_the_start_rate_counts_the_starts_of_another_table(context: ServiceContext) -> None:
    clock = Clock()
    limits = WhatIfLimits(active_per_org=10, starts_per_minute=6, start_burst=1)
    first = WhatIfJobs(context, limits, clock=clock)
    second = WhatIfJobs(context, limits, clock=clock)
    try:
        org_id = fresh_org(context, 1)
        first.start(current_configuration(context), org_id=org_id)
        with pytest.raises(WhatIfRateLimitedError) as refused:
            second.start(current_configuration(context), org_id=org_id)
        assert refused.value.retry_after == 10
    finally:
        first.close()
        second.close()


@dataclass
class LiveBucket:
    """The token bucket as one process keeps it in memory: the reference the replay from
    stored start times must agree with."""

    limits: WhatIfLimits
    tokens: float = -1.0
    updated: float = 0.0

    def admits(self, now: float) -> bool:
        if self.tokens < 0:
            self.tokens, self.updated = float(self.limits.start_burst), now
        per_second = self.limits.starts_per_minute / 60
        self.tokens = min(self.limits.start_burst, self.tokens + (now - self.updated) * per_second)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@settings(max_examples=200, deadline=None)
@given(
    # Per-second rates that are exact in binary and whole-second gaps: no rounding between
    # the two computations.
    per_minute=st.sampled_from([15.0, 30.0, 60.0, 120.0]),
    burst=st.integers(min_value=1, max_value=6),
    gaps=st.lists(st.integers(min_value=0, max_value=20), min_size=1, max_size=40),
)
def test_the_rate_replayed_from_stored_starts_admits_what_a_live_bucket_admits(
    per_minute: float, burst: int, gaps: list[int]
) -> None:
    limits = WhatIfLimits(starts_per_minute=per_minute, start_burst=burst)
    live = LiveBucket(limits)
    origin = datetime(2026, 1, 1, tzinfo=UTC)
    stored: list[datetime] = []
    elapsed = 0
    for gap in gaps:
        elapsed += gap
        now = origin + timedelta(seconds=elapsed)
        replayed = whatif_jobs.start_wait(limits, stored, now) == 0
        assert replayed == live.admits(float(elapsed))
        if replayed:
            stored.append(now)
