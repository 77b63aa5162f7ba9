"""What-if background jobs: progress, report, failure, retention."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from tests.store.db_fixtures import ContextFactory

from llmbilling import compile_policy
from llmbilling.core.whatif import DangerClass
from llmbilling.errors import StoreUnavailableError
from llmbilling.service import admin, audit
from llmbilling.service.audit import AuditContext
from llmbilling.service.context import ServiceContext
from llmbilling.service.whatif import current_configuration, proposed_configuration
from llmbilling.service.whatif_jobs import JobState, WhatIfJob, WhatIfJobs
from llmbilling.store.engine import Store

P2B = compile_policy(
    {"rungs": ["workspace_override", "derived_provider", "deployment_default"]}, "p2b.yaml"
)
FINISHED = (JobState.SUCCEEDED, JobState.FAILED)


@pytest.fixture
def jobs(context: ServiceContext) -> Iterator[WhatIfJobs]:
    table = WhatIfJobs(context, keep=3)
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
    started = [jobs.start(current_configuration(context), org_id=org_id) for _ in range(5)]
    for job in started[-3:]:
        finished(jobs, job)
    assert [job.id for job in jobs.jobs()] == [job.id for job in reversed(started[-3:])]
    assert jobs.get(started[0].id) is None
