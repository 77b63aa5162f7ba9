"""Rows of ``whatif_jobs``: durable what-if jobs, claimed by workers of any replica.

A worker claims the oldest queued job (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two
replicas never block on or take the same row; on SQLite the store's ``BEGIN IMMEDIATE``
already serializes writers) and holds it under a lease it renews. Every later write of the job
names the worker and is conditional on it still holding the lease: a worker whose lease was
taken over writes nothing. A lease that expires puts the job back in the queue, or ends it
``failed`` when it has used its attempts.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, delete, insert, select, text, update

from llmbilling.store.tables import whatif_jobs

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
ACTIVE_STATES = (QUEUED, RUNNING)

_SUMMARY_COLUMNS = (
    whatif_jobs.c.id,
    whatif_jobs.c.org_id,
    whatif_jobs.c.state,
    whatif_jobs.c.done,
    whatif_jobs.c.total,
    whatif_jobs.c.created_at,
    whatif_jobs.c.finished_at,
    whatif_jobs.c.error_code,
    whatif_jobs.c.error_message,
    whatif_jobs.c.requested_by,
    whatif_jobs.c.attempts,
)


@dataclass(frozen=True, slots=True)
class JobRow:
    """One job without its documents. ``org_id`` None means the whole fleet."""

    id: UUID
    org_id: UUID | None
    state: str
    done: int
    total: int | None
    created_at: datetime
    finished_at: datetime | None
    error_code: str | None
    error_message: str | None
    requested_by: str
    attempts: int


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job a worker now holds: its row and the proposal it runs (None: today's)."""

    job: JobRow
    proposed_policy: dict[str, Any] | None
    proposed_registry: dict[str, Any] | None


def _job_row(row: Sequence[Any]) -> JobRow:
    return JobRow(*row[: len(_SUMMARY_COLUMNS)])


def lock_org_starts(connection: Connection, org_id: UUID | None) -> None:
    """Serialize the starts of one org (the fleet counting as one more) until the transaction
    ends, so two replicas counting its rows cannot both admit into the last place. SQLite's
    write transactions are serialized already (``BEGIN IMMEDIATE``)."""
    if connection.dialect.name != "postgresql":
        return
    key = 0 if org_id is None else org_id.int
    # pg_advisory_xact_lock takes a signed 64-bit key: fold the 128-bit id into it.
    folded = ((key >> 64) ^ key) & 0xFFFF_FFFF_FFFF_FFFF
    signed = folded - (1 << 64) if folded >= 1 << 63 else folded
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": signed})


def org_jobs(connection: Connection, org_id: UUID | None) -> list[JobRow]:
    """The org's jobs (the fleet's when None), oldest first."""
    owner = whatif_jobs.c.org_id.is_(None) if org_id is None else whatif_jobs.c.org_id == org_id
    rows = connection.execute(
        select(*_SUMMARY_COLUMNS).where(owner).order_by(whatif_jobs.c.created_at, whatif_jobs.c.id)
    )
    return [_job_row(row) for row in rows]


def insert_job(
    connection: Connection,
    *,
    job_id: UUID,
    org_id: UUID | None,
    created_at: datetime,
    requested_by: str,
    proposed_policy: dict[str, Any] | None,
    proposed_registry: dict[str, Any] | None,
) -> None:
    connection.execute(
        insert(whatif_jobs).values(
            id=job_id,
            org_id=org_id,
            state=QUEUED,
            done=0,
            created_at=created_at,
            requested_by=requested_by,
            attempts=0,
            proposed_policy=proposed_policy,
            proposed_registry=proposed_registry,
        )
    )


def delete_jobs(connection: Connection, job_ids: Sequence[UUID]) -> None:
    if job_ids:
        connection.execute(delete(whatif_jobs).where(whatif_jobs.c.id.in_(job_ids)))


def job(connection: Connection, job_id: UUID) -> JobRow | None:
    row = connection.execute(select(*_SUMMARY_COLUMNS).where(whatif_jobs.c.id == job_id)).first()
    return None if row is None else _job_row(row)


def all_jobs(connection: Connection) -> list[JobRow]:
    """Every job of every org, newest first (bounded: each org keeps a bounded number)."""
    rows = connection.execute(
        select(*_SUMMARY_COLUMNS).order_by(whatif_jobs.c.created_at.desc(), whatif_jobs.c.id.desc())
    )
    return [_job_row(row) for row in rows]


def proposed_documents(
    connection: Connection, job_id: UUID
) -> tuple[dict[str, Any] | None, dict[str, Any] | None] | None:
    """The job's proposed policy and registry documents (None: today's); None: no such job."""
    row = connection.execute(
        select(whatif_jobs.c.proposed_policy, whatif_jobs.c.proposed_registry).where(
            whatif_jobs.c.id == job_id
        )
    ).first()
    return None if row is None else (row[0], row[1])


def report(connection: Connection, job_id: UUID) -> dict[str, Any] | None:
    value = connection.execute(
        select(whatif_jobs.c.report).where(whatif_jobs.c.id == job_id)
    ).scalar_one_or_none()
    return None if value is None else dict(value)


def expire_leases(
    connection: Connection, now: datetime, *, attempts: int, error_code: str, message: str
) -> None:
    """Jobs whose lease expired go back to the queue (to run again from the start), or end
    ``failed`` with ``error_code`` once they have had ``attempts`` runs."""
    expired = (whatif_jobs.c.state == RUNNING) & (whatif_jobs.c.lease_expires_at < now)
    connection.execute(
        update(whatif_jobs)
        .where(expired & (whatif_jobs.c.attempts >= attempts))
        .values(
            state=FAILED,
            finished_at=now,
            error_code=error_code,
            error_message=message,
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    connection.execute(
        update(whatif_jobs)
        .where(expired & (whatif_jobs.c.attempts < attempts))
        .values(state=QUEUED, done=0, total=None, lease_owner=None, lease_expires_at=None)
    )


def claim_next(connection: Connection, worker: str, lease_until: datetime) -> ClaimedJob | None:
    """Take the oldest queued job for ``worker`` until ``lease_until``; None when none is
    queued (or every queued one is being claimed by another worker right now)."""
    candidate = connection.execute(
        select(whatif_jobs.c.id, whatif_jobs.c.proposed_policy, whatif_jobs.c.proposed_registry)
        .where(whatif_jobs.c.state == QUEUED)
        .order_by(whatif_jobs.c.created_at, whatif_jobs.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    if candidate is None:
        return None
    taken = connection.execute(
        update(whatif_jobs)
        .where((whatif_jobs.c.id == candidate[0]) & (whatif_jobs.c.state == QUEUED))
        .values(
            state=RUNNING,
            lease_owner=worker,
            lease_expires_at=lease_until,
            attempts=whatif_jobs.c.attempts + 1,
        )
    )
    if taken.rowcount != 1:
        return None
    claimed = job(connection, candidate[0])
    assert claimed is not None  # updated by this transaction a statement ago
    return ClaimedJob(claimed, candidate[1], candidate[2])


def _held(job_id: UUID, worker: str) -> Any:
    return (
        (whatif_jobs.c.id == job_id)
        & (whatif_jobs.c.state == RUNNING)
        & (whatif_jobs.c.lease_owner == worker)
    )


def renew_lease(
    connection: Connection,
    job_id: UUID,
    worker: str,
    lease_until: datetime,
    *,
    done: int | None = None,
    total: int | None = None,
) -> bool:
    """Extend the lease (recording progress, when given); False when ``worker`` no longer
    holds the job."""
    values: dict[str, Any] = {"lease_expires_at": lease_until}
    if done is not None:
        values["done"] = done
    if total is not None:
        values["total"] = total
    result = connection.execute(update(whatif_jobs).where(_held(job_id, worker)).values(values))
    return result.rowcount == 1


def finish(
    connection: Connection,
    job_id: UUID,
    worker: str,
    now: datetime,
    *,
    report: dict[str, Any] | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
) -> bool:
    """End the job: ``succeeded`` with ``report``, else ``failed`` with the error. False when
    ``worker`` no longer holds it (nothing is written)."""
    result = connection.execute(
        update(whatif_jobs)
        .where(_held(job_id, worker))
        .values(
            state=SUCCEEDED if error_code is None else FAILED,
            finished_at=now,
            report=report,
            error_code=error_code,
            error_message=error_message,
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    return result.rowcount == 1


def release(connection: Connection, job_id: UUID, worker: str) -> None:
    """Give a held job back to the queue, its run not counted (the worker is stopping)."""
    connection.execute(
        update(whatif_jobs)
        .where(_held(job_id, worker))
        .values(
            state=QUEUED,
            done=0,
            total=None,
            attempts=whatif_jobs.c.attempts - 1,
            lease_owner=None,
            lease_expires_at=None,
        )
    )


def new_worker_name() -> str:
    """A name no other worker of any replica has, the lease owner's identity: host and
    process id (which process holds a job, for an operator) and a random suffix."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:12]}"
