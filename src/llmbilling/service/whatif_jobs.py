"""What-if runs as background jobs: start one, watch its progress, fetch its report.

Jobs run one at a time on a worker thread (a fleet scan is I/O- and CPU-bound; two at once
would only halve each other's speed) and are kept in memory, the newest ``keep`` of them: a
report is an answer to a question asked now, not a record — the audit log holds the record of
who asked.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from llmbilling.core.whatif import Configuration, WhatIfReport
from llmbilling.errors import ErrorCode, LlmBillingError
from llmbilling.service import audit
from llmbilling.service.audit import AuditContext
from llmbilling.service.context import ServiceContext, writing
from llmbilling.service.whatif import count_workspaces, run_whatif

log = logging.getLogger(__name__)


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


class WhatIfJobs:
    """The job table of one process. Thread-safe."""

    def __init__(self, context: ServiceContext, keep: int = 20) -> None:
        self._context = context
        self._keep = keep
        self._lock = threading.Lock()
        self._jobs: OrderedDict[UUID, WhatIfJob] = OrderedDict()
        self._reports: dict[UUID, WhatIfReport] = {}
        self._worker: ThreadPoolExecutor | None = None

    def start(
        self,
        proposed: Configuration,
        *,
        org_id: UUID | None,
        audit_context: AuditContext | None = None,
    ) -> WhatIfJob:
        """Queue a what-if of the fleet (or one org) under ``proposed``; audited as asked."""
        job = WhatIfJob(
            id=uuid.uuid4(),
            org_id=org_id,
            state=JobState.QUEUED,
            done=0,
            total=None,
            created_at=datetime.now(UTC),
        )
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
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > self._keep:
                forgotten, _ = self._jobs.popitem(last=False)
                self._reports.pop(forgotten, None)
            if self._worker is None:
                # Made on demand: an app may be started and stopped several times (tests do).
                self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="whatif")
            self._worker.submit(self._run, job.id, proposed)
        return job

    def get(self, job_id: UUID) -> WhatIfJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def report(self, job_id: UUID) -> WhatIfReport | None:
        with self._lock:
            return self._reports.get(job_id)

    def jobs(self) -> list[WhatIfJob]:
        """Newest first."""
        with self._lock:
            return list(reversed(self._jobs.values()))

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
        self._update(job_id, state=JobState.SUCCEEDED, finished_at=datetime.now(UTC))
