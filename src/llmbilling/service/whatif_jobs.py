"""What-if runs as background jobs: start one, watch its progress, fetch its report.

Jobs run one at a time on a worker thread (a fleet scan is I/O- and CPU-bound; two at once
would only halve each other's speed) and are kept in memory: a report is an answer to a
question asked now, not a record — the audit log holds the record of who asked.

Every bound is per org (the whole fleet, ``org_id`` None, counts as one more org), so one
tenant can neither evict another's jobs nor fill the queue in front of them (see
:class:`WhatIfLimits`): an org keeps its newest ``keep_per_org`` jobs (only its own finished
ones are forgotten), may have ``active_per_org`` queued or running, and starts at most
``starts_per_minute`` (after a pause, ``start_burst`` at once).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from llmbilling.config.settings import Settings
from llmbilling.core.decision import BillingDecision
from llmbilling.core.resolve import resolve_billing_mode
from llmbilling.core.whatif import Configuration, WhatIfReport
from llmbilling.errors import (
    ErrorCode,
    LlmBillingError,
    WhatIfQuotaExceededError,
    WhatIfRateLimitedError,
    WorkspaceNotFoundError,
)
from llmbilling.service import audit
from llmbilling.service.audit import AuditContext
from llmbilling.service.context import ServiceContext, parse_id, reading, writing
from llmbilling.service.resolve import read_path_inputs
from llmbilling.service.whatif import count_workspaces, current_configuration, run_whatif
from llmbilling.service.whatif_report import Proposal, proposal_of
from llmbilling.store.workspace_read import read_workspace_state

log = logging.getLogger(__name__)

# What a refusal for a full quota tells the caller to wait: when one of its jobs ends is not
# known in advance, and a small org's what-if takes seconds.
QUOTA_RETRY_SECONDS = 5


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class WhatIfJob:
    """A snapshot of one job. ``org_id`` None means the whole fleet."""

    id: UUID
    org_id: UUID | None
    state: JobState
    done: int
    total: int | None
    created_at: datetime
    finished_at: datetime | None = None
    error_code: ErrorCode | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class SampleDecisions:
    """One workspace decided now, from its stored state, under a job's current and proposed
    configuration: what a report's sample link shows side by side."""

    workspace_id: UUID
    org_id: UUID
    current: BillingDecision
    proposed: BillingDecision


@dataclass(frozen=True, slots=True)
class WhatIfLimits:
    """The per-org bounds of the job table (defaults: those of :class:`Settings`)."""

    keep_per_org: int = 20
    active_per_org: int = 2
    starts_per_minute: float = 10.0
    start_burst: int = 5

    @classmethod
    def from_settings(cls, settings: Settings) -> WhatIfLimits:
        return cls(
            keep_per_org=settings.whatif_keep_per_org,
            active_per_org=settings.whatif_active_per_org,
            starts_per_minute=settings.whatif_starts_per_minute,
            start_burst=settings.whatif_start_burst,
        )


@dataclass(slots=True)
class _StartBucket:
    """A token bucket of one org's starts: ``start_burst`` tokens, refilled at
    ``starts_per_minute``; a start takes one."""

    tokens: float
    updated: float = field(default=0.0)

    def take(self, limits: WhatIfLimits, now: float) -> int:
        """Take a token and answer 0, or take none and answer the whole seconds until one."""
        per_second = limits.starts_per_minute / 60
        self.tokens = min(limits.start_burst, self.tokens + (now - self.updated) * per_second)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0
        return max(1, math.ceil((1 - self.tokens) / per_second))

    def give_back(self) -> None:
        self.tokens += 1


class WhatIfJobs:
    """The job table of one process, bounded per org by ``limits``. Thread-safe.

    ``clock`` (seconds, monotonic) drives the start rate; tests pass their own."""

    def __init__(
        self,
        context: ServiceContext,
        limits: WhatIfLimits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._context = context
        self._limits = limits or WhatIfLimits()
        self._clock = clock
        self._lock = threading.Lock()
        self._jobs: OrderedDict[UUID, WhatIfJob] = OrderedDict()
        self._reports: dict[UUID, WhatIfReport] = {}
        self._proposals: dict[UUID, Proposal] = {}
        self._configurations: dict[UUID, tuple[Configuration, Configuration]] = {}
        self._buckets: dict[UUID | None, _StartBucket] = {}
        self._worker: ThreadPoolExecutor | None = None

    def start(
        self,
        proposed: Configuration,
        *,
        org_id: UUID | None,
        audit_context: AuditContext | None = None,
    ) -> WhatIfJob:
        """Queue a what-if of the fleet (or one org) under ``proposed``; audited as asked.

        Raises :class:`WhatIfQuotaExceededError` when the org already has ``active_per_org``
        jobs queued or running, :class:`WhatIfRateLimitedError` when it starts faster than
        its rate; either carries the seconds to wait. A start that fails (the audit entry
        could not be written) leaves no job and costs the org nothing."""
        job = WhatIfJob(
            id=uuid.uuid4(),
            org_id=org_id,
            state=JobState.QUEUED,
            done=0,
            total=None,
            created_at=datetime.now(UTC),
        )
        with self._lock:
            self._admit(job)
            self._configurations[job.id] = (current_configuration(self._context), proposed)
        try:
            self._audit_start(job, proposed, audit_context)
        except BaseException:
            with self._lock:
                self._jobs.pop(job.id, None)
                self._configurations.pop(job.id, None)
                self._buckets[org_id].give_back()
            raise
        with self._lock:
            self._forget_beyond_keep(org_id)
            if self._worker is None:
                # Made on demand: an app may be started and stopped several times (tests do).
                self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="whatif")
            self._worker.submit(self._run, job.id, proposed)
        return job

    def _admit(self, job: WhatIfJob) -> None:
        """Hold the lock. The quota, then the rate (a refused start takes no token); then the
        job is in the table, so two concurrent starts cannot both take the last place."""
        limits = self._limits
        active = sum(
            1
            for other in self._jobs.values()
            if other.org_id == job.org_id and other.state in (JobState.QUEUED, JobState.RUNNING)
        )
        if active >= limits.active_per_org:
            raise WhatIfQuotaExceededError(active, QUOTA_RETRY_SECONDS)
        now = self._clock()
        bucket = self._buckets.setdefault(job.org_id, _StartBucket(limits.start_burst, now))
        wait = bucket.take(limits, now)
        if wait:
            raise WhatIfRateLimitedError(limits.starts_per_minute, wait)
        self._jobs[job.id] = job

    def _forget_beyond_keep(self, org_id: UUID | None) -> None:
        """Hold the lock. Forget the org's oldest finished jobs beyond ``keep_per_org``; no
        other org's job, and no job still queued or running, is ever forgotten."""
        own = [job for job in self._jobs.values() if job.org_id == org_id]
        excess = len(own) - self._limits.keep_per_org
        for job in own:
            if excess <= 0:
                break
            if job.state in (JobState.SUCCEEDED, JobState.FAILED):
                del self._jobs[job.id]
                self._reports.pop(job.id, None)
                self._proposals.pop(job.id, None)
                self._configurations.pop(job.id, None)
                excess -= 1

    def _audit_start(
        self, job: WhatIfJob, proposed: Configuration, audit_context: AuditContext | None
    ) -> None:
        org_id = job.org_id
        with writing(self._context) as connection:
            audit.record(
                connection,
                audit_context or AuditContext(),
                "whatif.started",
                org_id=org_id,
                after={
                    "job_id": str(job.id),
                    "policy_version": proposed.policy.version,
                    "registry_version": None
                    if proposed.registry is None
                    else proposed.registry.version,
                },
            )

    def get(self, job_id: UUID) -> WhatIfJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def report(self, job_id: UUID) -> WhatIfReport | None:
        with self._lock:
            return self._reports.get(job_id)

    def proposal(self, job_id: UUID) -> Proposal | None:
        """The documents the job compared and their diffs, once its report is there."""
        with self._lock:
            return self._proposals.get(job_id)

    def jobs(self) -> list[WhatIfJob]:
        """This process's jobs of every org, newest first (each replica holds its own): a
        caller shows only those the reader may read."""
        with self._lock:
            return list(reversed(self._jobs.values()))

    def sample(self, job_id: UUID, workspace_id: str | UUID) -> SampleDecisions | None:
        """``workspace_id`` decided now, as the read path decides it, under the job's current
        and proposed configuration; None for a job no longer kept. Raises
        :class:`WorkspaceNotFoundError` for an unknown workspace (a malformed id:
        :class:`InvalidInputError`), :class:`StoreUnavailableError` when the store fails. The
        caller checks that its reader may read the returned ``org_id``."""
        with self._lock:
            configurations = self._configurations.get(job_id)
        if configurations is None:
            return None
        parsed = parse_id("workspace_id", workspace_id)
        with reading(self._context) as connection:
            state = read_workspace_state(connection, parsed)
        if state is None:
            raise WorkspaceNotFoundError(parsed)
        inputs = read_path_inputs(self._context, state)
        current, proposed = (
            resolve_billing_mode(inputs, configuration.registry, configuration.policy)
            for configuration in configurations
        )
        return SampleDecisions(parsed, state.org_id, current, proposed)

    def close(self) -> None:
        """Stop the worker, dropping queued jobs; a later :meth:`start` makes a new one."""
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.shutdown(wait=True, cancel_futures=True)

    def _update(self, job_id: UUID, **changes: Any) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                self._jobs[job_id] = replace(job, **changes)

    def _fail(self, job_id: UUID, code: ErrorCode, message: str) -> None:
        self._update(
            job_id,
            state=JobState.FAILED,
            finished_at=datetime.now(UTC),
            error_code=code,
            error_message=message,
        )

    def _run(self, job_id: UUID, proposed: Configuration) -> None:
        job = self.get(job_id)
        if job is None:
            return
        try:
            total = count_workspaces(self._context, job.org_id)
            self._update(job_id, state=JobState.RUNNING, total=total)
            report = run_whatif(
                self._context,
                proposed,
                org_id=job.org_id,
                on_progress=lambda done: self._update(job_id, done=done),
            )
            proposal = proposal_of(current_configuration(self._context), proposed)
        except LlmBillingError as error:
            self._fail(job_id, error.code, error.message)
            return
        except Exception:
            # A bug, not an outcome: keep the job from looking alive forever, log the details.
            log.exception("what-if job %s failed", job_id)
            self._fail(
                job_id, ErrorCode.INTERNAL_ERROR, "the what-if failed unexpectedly; see the logs"
            )
            return
        with self._lock:
            self._reports[job_id] = report
            self._proposals[job_id] = proposal
        self._update(job_id, state=JobState.SUCCEEDED, finished_at=datetime.now(UTC))
