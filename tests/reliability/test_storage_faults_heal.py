"""Storage faults under a real ``llmbilling serve`` heal by themselves, and readiness says
whether a write can succeed.

- SQLite, read-only: the database file and its write-ahead log made immutable (``chattr +i``:
  as root, a mode bit would not stop a write; the shared-memory file stays writable, as SQLite
  maps it), while writers open new connections; then fixed.
- SQLite, full disk: the database on a small tmpfs, filled to the last byte; then freed.
- PostgreSQL, read-only: ``ALTER DATABASE ... SET default_transaction_read_only = on`` and the
  server's sessions ended, so the pools reconnect read-only; then reset (no session is ended:
  the process must drop its read-only sessions itself).

While the fault holds, ``/readyz`` answers 503 and writes answer 503 ``STORE_UNAVAILABLE``
problems (on a full disk a small write may still fit in the already allocated log: there a
write answers 200 or 503, nothing else) and the decision GET never 5xx. Once fixed, the same
process (no restart) answers ``/readyz`` 200 and :data:`HEALED_WRITES` writes in a row 200,
within :data:`HEAL_DEADLINE_SECONDS`.
"""

from __future__ import annotations

import errno
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from tests.reliability.load import decision_path
from tests.reliability.servers import SeededStore, ServerProcess, seed_store
from tests.store.db_fixtures import POSTGRES_ADMIN_URL, PostgresServer

HEAL_DEADLINE_SECONDS = 30.0
FAULT_DEADLINE_SECONDS = 15.0
HEALED_WRITES = 20
CONCURRENT_WRITERS = 8
TMPFS_BYTES = 16 * 1024 * 1024


@contextmanager
def _serving(seeded: SeededStore, workdir: Path) -> Iterator[httpx.Client]:
    server = ServerProcess(seeded.database_url, workdir)
    server.start()
    try:
        with httpx.Client(
            base_url=server.base_url,
            headers={"Authorization": f"Bearer {seeded.token}"},
            timeout=20.0,
        ) as client:
            yield client
    finally:
        server.stop()


def _put(client: httpx.Client, workspace_id: UUID, mode: str = "byok") -> int:
    return client.put(decision_path(workspace_id), json={"mode": mode}).status_code


def _until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def _concurrent_puts(client: httpx.Client, workspace_id: UUID) -> list[httpx.Response]:
    """Writers at once, so the server's write pool opens new connections during the fault.

    Each writes ``platform_managed`` over the ``byok`` the test stored before the fault: a
    change while nothing commits (a write of what is stored already changes nothing and needs
    no write to succeed)."""
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def write(_number: int) -> None:
        for _ in range(3):
            response = client.put(decision_path(workspace_id), json={"mode": "platform_managed"})
            with lock:
                answers.append(response)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(CONCURRENT_WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def _assert_serving_through_the_fault(client: httpx.Client, workspace_id: UUID) -> None:
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["code"] == "STORE_UNAVAILABLE"
    assert client.get(decision_path(workspace_id)).status_code == 200


def _assert_healed(client: httpx.Client, workspace_id: UUID) -> None:
    assert _until(lambda: _put(client, workspace_id) == 200, HEAL_DEADLINE_SECONDS)
    modes = ("platform_managed", "byok")
    statuses = [_put(client, workspace_id, modes[n % 2]) for n in range(HEALED_WRITES)]
    assert statuses == [200] * HEALED_WRITES
    assert _until(lambda: client.get("/readyz").status_code == 200, HEAL_DEADLINE_SECONDS)


# --- SQLite, read-only -------------------------------------------------------------------------


def _chattr(flag: str, paths: list[Path]) -> None:
    subprocess.run(["chattr", flag, *map(str, paths)], check=True, capture_output=True)


@pytest.fixture
def immutable_capable(tmp_path: Path) -> Path:
    probe = tmp_path / "probe"
    probe.write_text("x")
    try:
        _chattr("+i", [probe])
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("chattr +i is not available here (needs root on ext4/xfs/btrfs)")
    _chattr("-i", [probe])
    return tmp_path


def test_a_sqlite_file_made_read_only_then_fixed_heals_without_a_restart(
    immutable_capable: Path,
) -> None:
    folder = immutable_capable / "store"
    database = folder / "store.sqlite3"
    seeded = seed_store(f"sqlite:///{database}", workspaces=1)
    workspace_id = seeded.workspace_ids[0]
    with _serving(seeded, immutable_capable) as client:
        assert _put(client, workspace_id) == 200
        assert client.get("/readyz").status_code == 200
        frozen = [path for path in (database, Path(f"{database}-wal")) if path.exists()]
        frozen.append(folder)
        _chattr("+i", frozen)
        try:
            answers = _concurrent_puts(client, workspace_id)
            assert {response.status_code for response in answers} == {503}
            assert {response.json()["code"] for response in answers} == {"STORE_UNAVAILABLE"}
            _assert_serving_through_the_fault(client, workspace_id)
        finally:
            _chattr("-i", frozen)
        _assert_healed(client, workspace_id)


# --- SQLite, full disk -------------------------------------------------------------------------


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False, capture_output=True)


def _fill(folder: Path) -> Path:
    """Write a file into ``folder`` until the filesystem has no byte left."""
    filler = folder / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb", buffering=0) as handle:
        while True:
            try:
                handle.write(chunk)
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                break
        for size in (4096, 512, 1):
            while True:
                try:
                    handle.write(chunk[:size])
                except OSError:
                    break
    return filler


def test_a_full_disk_is_not_ready_and_heals_once_space_is_freed(
    small_filesystem: Path, tmp_path: Path
) -> None:
    seeded = seed_store(f"sqlite:///{small_filesystem / 'store.sqlite3'}", workspaces=1)
    workspace_id = seeded.workspace_ids[0]
    with _serving(seeded, tmp_path) as client:
        assert _put(client, workspace_id) == 200
        assert client.get("/readyz").status_code == 200
        filler = _fill(small_filesystem)
        try:
            assert os.statvfs(small_filesystem).f_bavail == 0
            answers = _concurrent_puts(client, workspace_id)
            assert {response.status_code for response in answers} <= {200, 503}
            _assert_serving_through_the_fault(client, workspace_id)
        finally:
            filler.unlink()
        _assert_healed(client, workspace_id)


# --- PostgreSQL, read-only ---------------------------------------------------------------------


def _admin(statement: str, database: str) -> None:
    engine = create_engine(
        make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+psycopg"),
        isolation_level="AUTOCOMMIT",
    )
    try:
        with engine.connect() as connection:
            connection.execute(text(statement.format(database=database)))
    finally:
        engine.dispose()


END_SESSIONS = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
    " WHERE datname = '{database}' AND pid <> pg_backend_pid()"
)


def test_a_read_only_postgres_database_is_not_ready_and_heals_once_writable(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    seeded = seed_store(postgres_server.create_database(), workspaces=1)
    database = make_url(seeded.database_url).database
    assert database is not None
    workspace_id = seeded.workspace_ids[0]
    with _serving(seeded, tmp_path) as client:
        assert _put(client, workspace_id) == 200
        _admin('ALTER DATABASE "{database}" SET default_transaction_read_only = on', database)
        try:
            _admin(END_SESSIONS, database)
            assert _until(
                lambda: _put(client, workspace_id, "platform_managed") == 503,
                FAULT_DEADLINE_SECONDS,
            )
            answers = _concurrent_puts(client, workspace_id)
            assert {response.status_code for response in answers} == {503}
            _assert_serving_through_the_fault(client, workspace_id)
        finally:
            _admin('ALTER DATABASE "{database}" RESET default_transaction_read_only', database)
        _assert_healed(client, workspace_id)
