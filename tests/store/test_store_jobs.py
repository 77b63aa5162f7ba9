"""``whatif_jobs`` rows on both engines: a claim takes each queued job once, however many
workers claim at the same time, and a worker whose lease was taken over writes nothing.

Each test migrates a database of its own: a claim takes the oldest queued job of the whole
table, which in the session's shared database may be another test's."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from tests.store.db_fixtures import DatabaseFactory

from llmbilling.store import jobs as job_rows
from llmbilling.store import migrate
from llmbilling.store.engine import Store, open_store

LEASE = timedelta(seconds=30)
WORKERS = 4


@pytest.fixture
def store(new_database: DatabaseFactory) -> Iterator[Store]:
    opened = open_store(new_database())
    try:
        migrate.upgrade(opened)
        yield opened
    finally:
        opened.close()


def queue_jobs(store: Store, count: int) -> set[uuid.UUID]:
    """``count`` queued jobs of an org id no row has (jobs have no foreign key)."""
    org_id, ids = uuid.uuid4(), {uuid.uuid4() for _ in range(count)}
    with store.transaction() as connection:
        for job_id in ids:
            job_rows.insert_job(
                connection,
                job_id=job_id,
                org_id=org_id,
                created_at=datetime.now(UTC),
                requested_by="token:test",
                proposed_policy=None,
                proposed_registry=None,
            )
    return ids


def claim(store: Store, worker: str, lease: timedelta = LEASE) -> uuid.UUID | None:
    with store.transaction() as connection:
        claimed = job_rows.claim_next(connection, worker, datetime.now(UTC) + lease)
    return None if claimed is None else claimed.job.id


def test_workers_claiming_at_once_take_each_queued_job_exactly_once(store: Store) -> None:
    queued = queue_jobs(store, 12)
    start = threading.Barrier(WORKERS)

    def worker(number: int) -> list[uuid.UUID]:
        start.wait()
        taken = []
        while (job_id := claim(store, f"worker-{number}")) is not None:
            taken.append(job_id)
        return taken

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        claimed = [job_id for taken in pool.map(worker, range(WORKERS)) for job_id in taken]
    assert sorted(claimed) == sorted(queued)


def test_a_worker_whose_lease_was_taken_over_writes_nothing(store: Store) -> None:
    (job_id,) = queue_jobs(store, 1)
    assert claim(store, "presumed-dead", lease=-timedelta(seconds=1)) == job_id
    with store.transaction() as connection:
        job_rows.expire_leases(
            connection, datetime.now(UTC), attempts=2, error_code="X", message="lost"
        )
    assert claim(store, "successor") == job_id
    with store.transaction() as connection:
        late_renewal = job_rows.renew_lease(
            connection, job_id, "presumed-dead", datetime.now(UTC) + LEASE, done=1
        )
        late_finish = job_rows.finish(
            connection, job_id, "presumed-dead", datetime.now(UTC), report={"total": 0}
        )
        row = job_rows.job(connection, job_id)
    assert (late_renewal, late_finish) == (False, False)
    assert row is not None
    assert (row.state, row.done, row.attempts) == (job_rows.RUNNING, 0, 2)
