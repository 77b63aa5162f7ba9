"""Several ``llmbilling serve`` replicas on one PostgreSQL database, as behind a load balancer.

- A write through one replica is read through every other, with the same ETag: at once on the
  writing replica, and on the others when the read asks ``Cache-Control: no-cache``; a plain
  read there as soon as the change feed delivers the commit.
- A what-if job started on one replica is read, listed and finished through another; one whose
  replica is killed (``kill -9``) mid-run is run again from the start by a surviving replica.
- Killing a replica under writes loses no acknowledged write.

Each test starts its own replicas (real subprocesses) over one database of this module; the
what-if lease is short (``LLMBILLING_WHATIF_LEASE_SECONDS``) so a lost job is taken over
within seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select, text
from tests.reliability.load import MODES, TOKEN_ENV, decision_path, read_attempts
from tests.reliability.servers import (
    SeededStore,
    ServerProcess,
    llmbilling_serve,
    seed_store,
    skip_or_fail,
)
from tests.store.db_fixtures import POSTGRES_ADMIN_URL, PostgresServer

from llmbilling.store.engine import normalize_database_url
from llmbilling.store.tables import audit_log, whatif_jobs, workspaces

REPO_ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 2.0
WORKER_SETTINGS = {
    "LLMBILLING_WHATIF_LEASE_SECONDS": str(LEASE_SECONDS),
    "LLMBILLING_WHATIF_POLL_SECONDS": "0.2",
    # The tests start more jobs of one org than a minute's default rate allows.
    "LLMBILLING_WHATIF_STARTS_PER_MINUTE": "600",
    "LLMBILLING_WHATIF_START_BURST": "100",
}
WAIT_SECONDS = 60.0  # a generous bound on anything awaited, never a timing assertion
WRITERS_PER_REPLICA = 2
MIN_ACKNOWLEDGED = 10
OVERRIDE_ACTIONS = ("workspace.override_set", "workspace.override_cleared")

Replicas = Callable[[int], list[ServerProcess]]


def serve_with_worker_settings(port: int) -> list[str]:
    """``llmbilling serve`` with the short what-if lease (settings by env, via env(1))."""
    settings = [f"{name}={value}" for name, value in WORKER_SETTINGS.items()]
    return ["env", *settings, *llmbilling_serve(port)]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededStore]:
    server = PostgresServer(POSTGRES_ADMIN_URL)
    problem = server.check()
    if problem is not None:
        skip_or_fail(f"PostgreSQL not reachable for the replica tests: {problem}")
    try:
        yield seed_store(server.create_database(), workspaces=3)
    finally:
        server.drop_all()


@pytest.fixture
def replicas(seeded: SeededStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    """Starts ``count`` replicas on the module's database; all are stopped afterwards."""
    started: list[ServerProcess] = []

    def start(count: int) -> list[ServerProcess]:
        for _ in range(count):
            replica = ServerProcess(
                seeded.database_url,
                tmp_path_factory.mktemp("replica"),
                command=serve_with_worker_settings,
            )
            replica.start()
            started.append(replica)
        return started[-count:]

    yield start
    for replica in started:
        replica.stop()


def client(replica: ServerProcess, seeded: SeededStore) -> httpx.Client:
    return httpx.Client(
        base_url=replica.base_url,
        headers={"Authorization": f"Bearer {seeded.token}"},
        timeout=10.0,
    )


def poll(read: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool]) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        value = read()
        if done(value):
            return value
        time.sleep(0.05)
    raise AssertionError(f"not reached within {WAIT_SECONDS}s: last {value}")


def test_a_write_through_one_replica_is_read_through_every_other_with_its_etag(
    seeded: SeededStore, replicas: Replicas
) -> None:
    servers = replicas(3)
    clients = [client(server, seeded) for server in servers]
    workspace = decision_path(seeded.workspace_ids[0])
    stale_reads: list[int] = []
    try:
        for turn, mode in enumerate([*MODES, *MODES]):
            writer = clients[turn % len(clients)]
            current = writer.get(workspace)
            written = writer.put(
                workspace, json={"mode": mode}, headers={"If-Match": current.headers["etag"]}
            )
            assert written.status_code == 200, written.text
            own = writer.get(workspace)  # the writing replica: its own commit, at once
            assert (own.json()["mode"], own.json()["source"]) == (mode, "workspace_override")
            assert own.headers["etag"] == written.headers["etag"]
            for reader in clients:
                if reader is not writer:
                    fresh = reader.get(workspace, headers={"Cache-Control": "no-cache"})
                    assert (fresh.json()["mode"], fresh.json()["source"]) == (
                        mode,
                        "workspace_override",
                    )
                    assert fresh.headers["etag"] == written.headers["etag"]
                    read, stale = visible(reader, workspace, mode)
                    assert read.headers["etag"] == written.headers["etag"]
                    stale_reads.append(stale)
    finally:
        for each in clients:
            each.close()
    print(f"\nreads on other replicas before a write showed: {stale_reads}")


def visible(reader: httpx.Client, workspace: str, mode: str) -> tuple[httpx.Response, int]:
    """The decision once it shows the override ``mode``. Another replica serves decision
    inputs from memory, kept current by PostgreSQL's change feed: a commit reaches it when its
    notification does (bench/http.py measures that staleness), so the read is polled (a
    generous bound, no timing assertion); the writing replica answers from its own commit.
    Answers the read and how many reads before it still showed the state before the write."""
    deadline = time.monotonic() + WAIT_SECONDS
    stale = 0
    while True:
        read = reader.get(workspace)
        assert read.status_code == 200, read.text
        if (read.json()["mode"], read.json()["source"]) == (mode, "workspace_override"):
            return read, stale
        stale += 1
        assert time.monotonic() < deadline, f"{mode} not visible within {WAIT_SECONDS}s"
        time.sleep(0.001)


def start_whatif(through: httpx.Client, seeded: SeededStore) -> str:
    policy = {"rungs": ["workspace_override", "org_default", "deployment_default"]}
    started = through.post("/v1/whatif", json={"org_id": str(seeded.org_id), "policy": policy})
    assert started.status_code == 202, started.text
    job_id: str = started.json()["id"]
    return job_id


def test_a_job_started_on_one_replica_is_listed_read_and_finished_on_another(
    seeded: SeededStore, replicas: Replicas
) -> None:
    first, second = replicas(2)
    with client(first, seeded) as on_first, client(second, seeded) as on_second:
        job_id = start_whatif(on_first, seeded)
        assert job_id in [job["id"] for job in on_second.get("/v1/whatif").json()["jobs"]]
        job = poll(
            lambda: on_second.get(f"/v1/whatif/{job_id}").json(),
            lambda job: job["state"] in ("succeeded", "failed"),
        )
    assert job["state"] == "succeeded", job
    assert (job["done"], job["total"], job["report"]["total"]) == (3, 3, 3)


def holder_pid(database_url: str, job_id: str) -> int | None:
    """The process id in the lease owner's name (``host/pid/suffix``) of a running job."""
    engine = create_engine(normalize_database_url(database_url))
    try:
        with engine.connect() as connection:
            owner = connection.execute(
                select(whatif_jobs.c.lease_owner).where(whatif_jobs.c.id == job_id)
            ).scalar_one_or_none()
    finally:
        engine.dispose()
    return None if owner is None else int(owner.split("/")[1])


def test_a_job_whose_replica_is_killed_mid_run_is_finished_by_another(
    seeded: SeededStore, replicas: Replicas
) -> None:
    servers = replicas(2)
    # The scan reads the secret names (a start does not): it waits behind this lock, so the
    # job is mid-run when its replica dies.
    engine = create_engine(normalize_database_url(seeded.database_url))
    try:
        with engine.connect() as blocker:
            blocker.execute(
                text("LOCK TABLE workspace_secrets, org_secrets IN ACCESS EXCLUSIVE MODE")
            )
            with client(servers[0], seeded) as on_first:
                job_id = start_whatif(on_first, seeded)
                poll(
                    lambda: on_first.get(f"/v1/whatif/{job_id}").json(),
                    lambda job: job["state"] == "running",
                )
            pid = holder_pid(seeded.database_url, job_id)
            (holder,) = [server for server in servers if server.pid == pid]
            (survivor,) = [server for server in servers if server is not holder]
            holder.kill()
            blocker.rollback()  # the lock goes; the dead replica's lease runs out
    finally:
        engine.dispose()
    with client(survivor, seeded) as on_survivor:
        job = poll(
            lambda: on_survivor.get(f"/v1/whatif/{job_id}").json(),
            lambda job: job["state"] in ("succeeded", "failed"),
        )
    assert job["state"] == "succeeded", job
    assert job["report"]["total"] == 3
    assert holder_pid(seeded.database_url, job_id) is None  # finished: no lease held
    assert attempts_of(seeded.database_url, job_id) == 2


def attempts_of(database_url: str, job_id: str) -> int:
    engine = create_engine(normalize_database_url(database_url))
    try:
        with engine.connect() as connection:
            attempts: int = connection.execute(
                select(whatif_jobs.c.attempts).where(whatif_jobs.c.id == job_id)
            ).scalar_one()
    finally:
        engine.dispose()
    return attempts


def start_writers(
    seeded: SeededStore, servers: list[ServerProcess], workdir: Path
) -> tuple[list[subprocess.Popen[bytes]], list[Path]]:
    """``tests.reliability.load`` writers (see test_durability.py), two per replica."""
    env = {
        **os.environ,
        TOKEN_ENV: seeded.token,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    workspaces_arg = ",".join(str(workspace) for workspace in seeded.workspace_ids)
    writers, outputs = [], []
    for number in range(WRITERS_PER_REPLICA * len(servers)):
        server = servers[number % len(servers)]
        output = workdir / f"writer{number}.jsonl"
        command = [sys.executable, "-m", "tests.reliability.load", "--base-url", server.base_url]
        command += ["--workspaces", workspaces_arg, "--writer", str(number)]
        command += ["--out", str(output), "--stop-file", str(workdir / "stop")]
        command += ["--seconds", str(WAIT_SECONDS * 2)]
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
        outputs.append(output)
    return writers, outputs


def acknowledged_since(outputs: list[Path], since: float) -> int:
    return sum(
        attempt.acknowledged and attempt.ended >= since for attempt in read_attempts(outputs)
    )


def test_killing_a_replica_under_writes_loses_no_acknowledged_write(
    seeded: SeededStore, replicas: Replicas, tmp_path: Path
) -> None:
    doomed, survivor = replicas(2)
    writers, outputs = start_writers(seeded, [doomed, survivor], tmp_path)
    try:
        poll(lambda: {"n": acknowledged_since(outputs, 0)}, lambda n: n["n"] >= MIN_ACKNOWLEDGED)
        doomed.kill()
        killed_at = time.time()
        poll(
            lambda: {"n": acknowledged_since(outputs, killed_at)},
            lambda n: n["n"] >= MIN_ACKNOWLEDGED,
        )
        (tmp_path / "stop").touch()
        for writer in writers:
            assert writer.wait(timeout=WAIT_SECONDS) == 0, "a writer process failed"
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.wait()
    acknowledged = [attempt for attempt in read_attempts(outputs) if attempt.acknowledged]
    engine = create_engine(normalize_database_url(seeded.database_url))
    try:
        with engine.connect() as connection:
            audited = set(
                connection.execute(
                    select(audit_log.c.request_id).where(audit_log.c.action.in_(OVERRIDE_ACTIONS))
                ).scalars()
            )
            stored = {
                str(row.id): row.llm_billing_mode
                for row in connection.execute(
                    select(workspaces.c.id, workspaces.c.llm_billing_mode)
                )
            }
    finally:
        engine.dispose()
    assert acknowledged
    assert [a.request_id for a in acknowledged if a.request_id not in audited] == []
    with client(survivor, seeded) as on_survivor:
        for workspace in seeded.workspace_ids:
            override = stored[str(workspace)]
            if override is not None:
                served = on_survivor.get(decision_path(workspace)).json()
                assert (served["mode"], served["source"]) == (override, "workspace_override")


def test_a_job_outlives_a_kill_of_the_only_server_on_the_embedded_store(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The embedded SQLite default: one server, its in-process worker; a job id answers after
    a ``kill -9`` and a restart as before it."""
    database_url = f"sqlite:///{tmp_path_factory.mktemp('embedded') / 'store.sqlite3'}"
    embedded = seed_store(database_url, workspaces=3)
    server = ServerProcess(
        database_url, tmp_path_factory.mktemp("embedded-server"), command=serve_with_worker_settings
    )
    server.start()
    try:
        with client(server, embedded) as before:
            job_id = start_whatif(before, embedded)
            done = poll(
                lambda: before.get(f"/v1/whatif/{job_id}").json(),
                lambda job: job["state"] in ("succeeded", "failed"),
            )
        server.kill()
        server.start()
        with client(server, embedded) as after:
            again = after.get(f"/v1/whatif/{job_id}")
    finally:
        server.stop()
    assert done["state"] == "succeeded", done
    assert again.status_code == 200
    assert again.json() == done
