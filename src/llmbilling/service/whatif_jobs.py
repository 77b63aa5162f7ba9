"""What-if runs as background jobs: start one, watch its progress, fetch its report.

Jobs are rows of the store (``store/jobs.py``): state, progress, who asked, the proposal and,
once done, the report document. Every replica sees every job, and a restart forgets none.
Each process runs one worker thread (a fleet scan is I/O- and CPU-bound; two at once would
only halve each other's speed) that claims the oldest queued job of any replica under a lease
and renews it while it runs. A job whose worker is lost (killed, partitioned) is run again
from the start by another worker once its lease expires — a what-if is a read, so a rerun is
harmless — and ends ``failed`` with ``WHATIF_INTERRUPTED`` when it has used its attempts. A
worker that stops cleanly gives its job back to the queue at once.

Every bound is per org (the whole fleet, ``org_id`` None, counts as one more org) and counted
from the rows, so it holds across replicas (see :class:`WhatIfLimits`): an org keeps its
newest ``keep_per_org`` jobs (only its own finished ones are forgotten), may have
``active_per_org`` queued or running, and starts at most ``starts_per_minute`` (after a pause,
``start_burst`` at once).
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from llmbilling.config.settings import Settings
from llmbilling.core.decision import BillingDecision
from llmbilling.core.policy import compile_policy
from llmbilling.core.registry import compile_registry
from llmbilling.core.resolve import resolve_billing_mode
from llmbilling.core.whatif import Configuration
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
from llmbilling.service.whatif_report import DocumentDiff, Proposal, proposal_of, report_document
from llmbilling.store import jobs as job_rows
from llmbilling.store.workspace_read import read_workspace_state

log = logging.getLogger(__name__)

# What a refusal for a full quota tells the caller to wait: when one of its jobs ends is not
# known in advance, and a small org's what-if takes seconds.
QUOTA_RETRY_SECONDS = 5


class JobState(StrEnum):
    QUEUED = job_rows.QUEUED
    RUNNING = job_rows.RUNNING
    SUCCEEDED = job_rows.SUCCEEDED
    FAILED = job_rows.FAILED


@dataclass(frozen=True, slots=True)
class WhatIfJob:
    """A snapshot of one job. ``org_id`` None means the whole fleet; ``requested_by`` is the
    actor that started it; ``attempts`` counts the runs begun (a lost worker's included)."""

    id: UUID
    org_id: UUID | None
    state: JobState
    done: int
    total: int | None
    created_at: datetime
    requested_by: str = ""
    attempts: int = 0
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
    """The per-org bounds of the jobs (defaults: those of :class:`Settings`)."""

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


@dataclass(frozen=True, slots=True)
class JobLease:
    """How workers hold jobs: a lease of ``seconds`` renewed every third of it, an idle
    worker's look for work every ``poll_seconds``, ``attempts`` runs before a lost worker
    fails the job (defaults: those of :class:`Settings`)."""

    seconds: float = 30.0
    poll_seconds: float = 1.0
    attempts: int = 2

    @classmethod
    def from_settings(cls, settings: Settings) -> JobLease:
        return cls(
            seconds=settings.whatif_lease_seconds,
            poll_seconds=settings.whatif_poll_seconds,
            attempts=settings.whatif_attempts,
        )


def start_wait(limits: WhatIfLimits, starts: Sequence[datetime], now: datetime) -> int:
    """Seconds until the org may start again (0: now), from the times of its kept starts: a
    token bucket of ``start_burst`` tokens refilled at ``starts_per_minute``, full before the
    first of them, replayed over them. Refused starts leave no row and take no token."""
    per_second = limits.starts_per_minute / 60
    tokens = float(limits.start_burst)
    previous: datetime | None = None

    def refilled(moment: datetime) -> float:
        elapsed = 0.0 if previous is None else max(0.0, (moment - previous).total_seconds())
        return min(limits.start_burst, tokens + elapsed * per_second)

    for moment in sorted(starts):
        tokens = refilled(moment) - 1
        previous = moment
    tokens = refilled(now)
    if tokens >= 1:
        return 0
    return max(1, math.ceil((1 - tokens) / per_second))


def _utc_now() -> datetime:
    return datetime.now(UTC)


class WorkerStoppedError(Exception):
    """Raised into a running scan when its worker stops or loses its lease; never leaves
    :meth:`WhatIfJobs._run`, which gives the job back to the queue."""


class WhatIfJobs:
    """The jobs in the store, and this process's worker. Thread-safe.

    ``clock`` (UTC) stamps starts and leases and drives the start rate; tests pass their own.
    """

    def __init__(
        self,
        context: ServiceContext,
        limits: WhatIfLimits | None = None,
        lease: JobLease | None = None,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._context = context
        self._limits = limits or WhatIfLimits()
        self._lease = lease or JobLease()
        self._clock = clock
        self._worker_name = job_rows.new_worker_name()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None

    def start(
        self,
        proposed: Configuration,
        *,
        org_id: UUID | None,
        audit_context: AuditContext | None = None,
    ) -> WhatIfJob:
        """Queue a what-if of the fleet (or one org) under ``proposed``; audited as asked, in
        the transaction that stores the job (one is written if and only if the other is).

        Raises :class:`WhatIfQuotaExceededError` when the org already has ``active_per_org``
        jobs queued or running, :class:`WhatIfRateLimitedError` when it starts faster than
        its rate; either carries the seconds to wait. :class:`StoreUnavailableError` when the
        store fails: then there is no job and the org's rate is not charged."""
        asked = audit_context or AuditContext()
        now = self._clock()
        job = WhatIfJob(
            id=uuid.uuid4(),
            org_id=org_id,
            state=JobState.QUEUED,
            done=0,
            total=None,
            created_at=now,
            requested_by=asked.actor,
        )
        with writing(self._context) as connection:
            job_rows.lock_org_starts(connection, org_id)
            own = job_rows.org_jobs(connection, org_id)
            self._admit(own, now)
            job_rows.insert_job(
                connection,
                job_id=job.id,
                org_id=org_id,
                created_at=now,
                requested_by=asked.actor,
                proposed_policy=None
                if proposed.policy is self._context.policy
                else proposed.policy.to_document(),
                proposed_registry=None
                if proposed.registry is None or proposed.registry is self._context.registry
                else proposed.registry.to_document(),
            )
            audit.record(
                connection,
                asked,
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
            job_rows.delete_jobs(connection, self._beyond_keep(own))
        self.open()
        self._wake.set()
        return job

    def _admit(self, own: list[job_rows.JobRow], now: datetime) -> None:
        """The quota, then the rate, over the org's rows (read under its start lock)."""
        limits = self._limits
        active = sum(1 for row in own if row.state in job_rows.ACTIVE_STATES)
        if active >= limits.active_per_org:
            raise WhatIfQuotaExceededError(active, QUOTA_RETRY_SECONDS)
        wait = start_wait(limits, [_aware(row.created_at) for row in own], now)
        if wait:
            raise WhatIfRateLimitedError(limits.starts_per_minute, wait)

    def _beyond_keep(self, own: list[job_rows.JobRow]) -> list[UUID]:
        """The org's oldest finished jobs beyond ``keep_per_org`` once the new one is in: no
        other org's job, and no job still queued or running, is ever forgotten."""
        excess = len(own) + 1 - self._limits.keep_per_org
        finished = [row.id for row in own if row.state not in job_rows.ACTIVE_STATES]
        return finished[: max(0, excess)]

    def get(self, job_id: UUID) -> WhatIfJob | None:
        """The job as stored (read from the primary: a worker's last write is seen)."""
        with writing(self._context) as connection:
            row = job_rows.job(connection, job_id)
        return None if row is None else _job_of(row)

    def jobs(self) -> list[WhatIfJob]:
        """The jobs of every org and of the fleet, started on any replica, newest first: a
        caller shows only those the reader may read."""
        with writing(self._context) as connection:
            rows = job_rows.all_jobs(connection)
        return [_job_of(row) for row in rows]

    def jobs_of_org(self, org_id: UUID) -> list[WhatIfJob]:
        """One org's jobs, started on any replica, newest first."""
        with writing(self._context) as connection:
            rows = job_rows.org_jobs(connection, org_id)
        return [_job_of(row) for row in reversed(rows)]

    def report_document(self, job_id: UUID) -> dict[str, Any] | None:
        """The report's document (:func:`report_document`) once the job has succeeded."""
        with writing(self._context) as connection:
            return job_rows.report(connection, job_id)

    def proposal(self, job_id: UUID) -> Proposal | None:
        """The documents the job compared and their diffs, once its report is there."""
        document = self.report_document(job_id)
        if document is None:
            return None
        documents = document["proposal"]
        return Proposal(
            policy=DocumentDiff("policy", **documents["policy"]),
            registry=DocumentDiff("registry", **documents["registry"]),
        )

    def sample(self, job_id: UUID, workspace_id: str | UUID) -> SampleDecisions | None:
        """``workspace_id`` decided now, as the read path decides it, under today's and the
        job's proposed configuration; None for a job no longer kept. Raises
        :class:`WorkspaceNotFoundError` for an unknown workspace (a malformed id:
        :class:`InvalidInputError`), :class:`StoreUnavailableError` when the store fails. The
        caller checks that its reader may read the returned ``org_id``."""
        with writing(self._context) as connection:
            documents = job_rows.proposed_documents(connection, job_id)
        if documents is None:
            return None
        proposed = self._proposed(job_id, *documents)
        parsed = parse_id("workspace_id", workspace_id)
        with reading(self._context) as connection:
            state = read_workspace_state(connection, parsed)
        if state is None:
            raise WorkspaceNotFoundError(parsed)
        inputs = read_path_inputs(self._context, state)
        current, proposal = (
            resolve_billing_mode(inputs, configuration.registry, configuration.policy)
            for configuration in (current_configuration(self._context), proposed)
        )
        return SampleDecisions(parsed, state.org_id, current, proposal)

    def _proposed(
        self,
        job_id: UUID,
        policy: dict[str, Any] | None,
        registry: dict[str, Any] | None,
    ) -> Configuration:
        """The job's proposal compiled from its stored documents (None: today's)."""
        return Configuration(
            self._context.policy
            if policy is None
            else compile_policy(policy, f"what-if job {job_id}: policy"),
            self._context.registry
            if registry is None
            else compile_registry(registry, f"what-if job {job_id}: registry"),
        )

    # --- the worker ----------------------------------------------------------------------

    def open(self) -> None:
        """Start this process's worker, unless it runs (an app opens it at startup, so a
        replica works on jobs other replicas started)."""
        with self._lock:
            if self._worker is not None and self._worker.is_alive():
                return
            self._stopping.clear()
            self._worker = threading.Thread(target=self._work, name="whatif-worker", daemon=True)
            self._worker.start()

    def close(self) -> None:
        """Stop the worker; a job it runs goes back to the queue (for any replica's worker).
        A later :meth:`start` or :meth:`open` starts a new worker."""
        with self._lock:
            worker, self._worker = self._worker, None
            self._stopping.set()
            self._wake.set()
        if worker is not None:
            worker.join()

    def _work(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                claimed = self._claim()
            except LlmBillingError as error:
                log.warning("what-if worker cannot claim a job: %s", error.message)
                claimed = None
            if claimed is None:
                self._wake.wait(self._lease.poll_seconds)
                continue
            self._run(claimed)

    def _claim(self) -> job_rows.ClaimedJob | None:
        now = self._clock()
        with writing(self._context) as connection:
            job_rows.expire_leases(
                connection,
                now,
                attempts=self._lease.attempts,
                error_code=ErrorCode.WHATIF_INTERRUPTED,
                message=f"the worker running this what-if stopped on its last attempt"
                f" (of {self._lease.attempts}); start it again",
            )
            return job_rows.claim_next(connection, self._worker_name, self._lease_until())

    def _lease_until(self) -> datetime:
        return self._clock() + timedelta(seconds=self._lease.seconds)

    def _renew(self, job_id: UUID, *, done: int | None = None, total: int | None = None) -> None:
        """Extend the lease (with progress); a lease another worker took stops this run."""
        with writing(self._context) as connection:
            held = job_rows.renew_lease(
                connection, job_id, self._worker_name, self._lease_until(), done=done, total=total
            )
        if not held:
            raise WorkerStoppedError

    def _progress(self, job_id: UUID, done: int) -> None:
        if self._stopping.is_set():
            raise WorkerStoppedError
        self._renew(job_id, done=done)

    def _heartbeat(self, job_id: UUID, ended: threading.Event) -> None:
        while not ended.wait(self._lease.seconds / 3):
            try:
                self._renew(job_id)
            except (WorkerStoppedError, LlmBillingError):
                return  # the run's own writes find out and stop

    def _run(self, claimed: job_rows.ClaimedJob) -> None:
        job_id, org_id = claimed.job.id, claimed.job.org_id
        ended = threading.Event()
        heartbeat = threading.Thread(
            target=self._heartbeat, args=(job_id, ended), name="whatif-lease", daemon=True
        )
        heartbeat.start()
        outcome: dict[str, Any]
        try:
            proposed = self._proposed(job_id, claimed.proposed_policy, claimed.proposed_registry)
            self._renew(job_id, total=count_workspaces(self._context, org_id))
            report = run_whatif(
                self._context,
                proposed,
                org_id=org_id,
                on_progress=lambda done: self._progress(job_id, done),
            )
            document = report_document(
                report, proposal_of(current_configuration(self._context), proposed)
            )
            outcome = {"report": document}
        except WorkerStoppedError:
            ended.set()
            self._give_back(job_id)
            return
        except LlmBillingError as error:
            outcome = {"error_code": error.code, "error_message": error.message}
        except Exception:
            # A bug, not an outcome: keep the job from looking alive forever, log the details.
            log.exception("what-if job %s failed", job_id)
            outcome = {
                "error_code": ErrorCode.INTERNAL_ERROR,
                "error_message": "the what-if failed unexpectedly; see the logs",
            }
        finally:
            ended.set()
        try:
            with writing(self._context) as connection:
                job_rows.finish(connection, job_id, self._worker_name, self._clock(), **outcome)
        except LlmBillingError as error:
            # The lease expires and another worker runs the job again.
            log.warning("what-if job %s: its outcome could not be stored: %s", job_id, error)

    def _give_back(self, job_id: UUID) -> None:
        try:
            with writing(self._context) as connection:
                job_rows.release(connection, job_id, self._worker_name)
        except LlmBillingError as error:
            log.warning("what-if job %s could not be given back: %s", job_id, error.message)


def _job_of(row: job_rows.JobRow) -> WhatIfJob:
    return WhatIfJob(
        id=row.id,
        org_id=row.org_id,
        state=JobState(row.state),
        done=row.done,
        total=row.total,
        created_at=_aware(row.created_at),
        requested_by=row.requested_by,
        attempts=row.attempts,
        finished_at=None if row.finished_at is None else _aware(row.finished_at),
        error_code=None if row.error_code is None else ErrorCode(row.error_code),
        error_message=row.error_message,
    )


def _aware(moment: datetime) -> datetime:
    # SQLite hands timestamps back without their zone; the store writes UTC only.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
