"""Secrets: key rotation survives a ``kill -9`` half-way.

``tests/service/test_service_rotate.py`` interrupts ``rotate_secrets`` by bounding its batches;
here a ``llmbilling secrets rotate --batch-size 5`` process is killed with SIGKILL once it has
committed a few batches of a fleet far too large to finish first (most likely inside a batch's
transaction; between two, nothing differs). Every secret must still decrypt, each to its own
value, while the fleet is half-rotated; a second run finishes the job; afterwards the newest key
alone decrypts everything, and the audit log accounts for every secret exactly once.
``LLMBILLING_LONG_RUN=1`` kills it five times on a larger fleet before resuming.

The sentinel scan (no plaintext secret anywhere but a provision's env):
``test_secrets_sentinel_scan.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import Table, func, insert, select
from sqlalchemy.engine import make_url
from tests.environment import clean_environ
from tests.reliability.long_run import LONG_RUN, report
from tests.store.db_fixtures import DatabaseFactory

from llmbilling.store import migrate
from llmbilling.store.crypto import EncryptedValue, KeyRing, SecretLocation, SecretScopeName
from llmbilling.store.engine import open_store
from llmbilling.store.tables import audit_log, org_secrets, organizations, workspace_secrets
from llmbilling.store.tables import workspaces as workspaces_table

SCRIPT = Path(sys.executable).with_name("llmbilling")

ROTATION_WORKSPACES = 400 if LONG_RUN else 150
SECRETS_PER_WORKSPACE = 20
ROTATION_BATCH = 5
KILLS = 5 if LONG_RUN else 1
# Batches committed by a run before it is killed.
BATCHES_BEFORE_KILL = 3
ROTATION_DEADLINE_SECONDS = 120.0

SecretKey = tuple[SecretScopeName, UUID, str]


def seed_secret_fleet(database_url: str, key_ring: KeyRing) -> dict[SecretKey, str]:
    """One org and its workspaces, written in bulk, each with ``SECRETS_PER_WORKSPACE`` secrets
    (and the org with as many); returns every plaintext by (scope, owner, name)."""
    store = open_store(database_url)
    try:
        migrate.upgrade(store)
        stamp = datetime.now(UTC)
        org_id = uuid.uuid4()
        workspace_ids = [uuid.uuid4() for _ in range(ROTATION_WORKSPACES)]
        plaintext: dict[SecretKey, str] = {}
        rows: dict[SecretScopeName, list[dict[str, Any]]] = {"org": [], "workspace": []}
        owners: list[tuple[SecretScopeName, UUID]] = [("org", org_id)]
        owners += [("workspace", workspace_id) for workspace_id in workspace_ids]
        for scope, owner in owners:
            for index in range(SECRETS_PER_WORKSPACE):
                name = f"SECRET_{index:02d}"
                value = f"rot-SENTINEL-{uuid.uuid4().hex}"
                plaintext[scope, owner, name] = value
                sealed = key_ring.encrypt(value, SecretLocation(scope, owner, name))
                rows[scope].append(
                    {
                        "org_id" if scope == "org" else "workspace_id": owner,
                        "key": name,
                        "ciphertext": sealed.ciphertext,
                        "key_version": sealed.key_version,
                        "updated_at": stamp,
                    }
                )
        with store.engine.begin() as connection:
            connection.execute(
                insert(organizations),
                [{"id": org_id, "name": "rotation", "created_at": stamp, "updated_at": stamp}],
            )
            connection.execute(
                insert(workspaces_table),
                [
                    {"id": w, "org_id": org_id, "created_at": stamp, "updated_at": stamp}
                    for w in workspace_ids
                ],
            )
            connection.execute(insert(org_secrets), rows["org"])
            connection.execute(insert(workspace_secrets), rows["workspace"])
        return plaintext
    finally:
        store.close()


@dataclass(frozen=True)
class StoredSecrets:
    versions: dict[int, int]  # key version -> secrets under it
    rotated_in_audit: int  # the sum of every secrets.rotated entry's count
    rotation_batches: int


SECRET_TABLES: tuple[tuple[SecretScopeName, Table, str], ...] = (
    ("org", org_secrets, "org_id"),
    ("workspace", workspace_secrets, "workspace_id"),
)


def stored_secrets(
    database_url: str, key_ring: KeyRing, plaintext: dict[SecretKey, str]
) -> StoredSecrets:
    """Decrypt every stored secret with ``key_ring``: each must give back its own value."""
    store = open_store(database_url)
    try:
        versions: dict[int, int] = {}
        with store.read_engine.connect() as connection:
            for scope, table, owner_column in SECRET_TABLES:
                rows = connection.execute(
                    select(
                        table.c[owner_column], table.c.key, table.c.ciphertext, table.c.key_version
                    )
                ).all()
                for owner, name, ciphertext, version in rows:
                    location = SecretLocation(scope, owner, name)
                    value = key_ring.decrypt(EncryptedValue(ciphertext, version), location)
                    assert value == plaintext[scope, owner, name]
                    versions[version] = versions.get(version, 0) + 1
            entries = connection.execute(
                select(audit_log.c.after).where(audit_log.c.action == "secrets.rotated")
            ).all()
        assert sum(versions.values()) == len(plaintext)
        return StoredSecrets(
            versions, sum(int(after["count"]) for (after,) in entries), len(entries)
        )
    finally:
        store.close()


def rotation_batches(database_url: str) -> int:
    store = open_store(database_url)
    try:
        with store.read_engine.connect() as connection:
            count: int = connection.execute(
                select(func.count())
                .select_from(audit_log)
                .where(audit_log.c.action == "secrets.rotated")
            ).scalar_one()
            return count
    finally:
        store.close()


def rotate_command(database_url: str, key_ring: str) -> tuple[list[str], dict[str, str]]:
    env = clean_environ()
    env.update(LLMBILLING_DATABASE_URL=database_url, LLMBILLING_SECRET_KEYS=key_ring)
    command = [str(SCRIPT), "secrets", "rotate", "--batch-size", str(ROTATION_BATCH)]
    return command, env


def kill_rotation_midway(database_url: str, key_ring: str, folder: Path) -> int:
    """Start ``llmbilling secrets rotate``, SIGKILL it once it has committed a few more batches
    than before; returns the batches committed when it died."""
    command, env = rotate_command(database_url, key_ring)
    start = rotation_batches(database_url)
    with (folder / "rotate.log").open("ab") as log:
        process = subprocess.Popen(
            command, env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + ROTATION_DEADLINE_SECONDS
    try:
        while rotation_batches(database_url) < start + BATCHES_BEFORE_KILL:
            assert process.poll() is None, (
                "the rotation finished (or failed) before it could be killed:"
                f" {(folder / 'rotate.log').read_text()[-2000:]}"
            )
            assert time.monotonic() < deadline, "the rotation never started committing"
            time.sleep(0.005)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    return rotation_batches(database_url)


def test_rotation_killed_mid_run_resumes_and_every_secret_still_decrypts(
    new_database: DatabaseFactory, tmp_path: Path
) -> None:
    database_url = new_database()
    old_ring = KeyRing.new_key_text(1)
    new_key = KeyRing.new_key_text(2)
    both = f"{old_ring},{new_key}"
    plaintext = seed_secret_fleet(database_url, KeyRing.parse(old_ring))
    total = len(plaintext)
    started = time.perf_counter()

    for _ in range(KILLS):
        kill_rotation_midway(database_url, both, tmp_path)
        # Half-rotated: every secret decrypts to its own value under the old and new keys,
        # and the audit log counts exactly the secrets that moved (a killed batch rolled back
        # with its audit entry).
        state = stored_secrets(database_url, KeyRing.parse(both), plaintext)
        assert 0 < state.versions.get(2, 0) < total, state
        assert state.rotated_in_audit == state.versions[2]

    command, env = rotate_command(database_url, both)
    resumed = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "0 remaining" in resumed.stdout

    # Done: the newest key alone decrypts everything (the old one can be retired), and the
    # audit log accounts for every secret exactly once.
    final = stored_secrets(database_url, KeyRing.parse(new_key), plaintext)
    assert final.versions == {2: total}
    assert final.rotated_in_audit == total
    engine = make_url(database_url).get_backend_name()
    report(
        f"rotation on {engine}: {total:,} secrets, killed {KILLS}x with SIGKILL mid-run,"
        f" resumed; {final.rotation_batches} committed batches, every secret decrypted to its"
        f" value ({time.perf_counter() - started:.1f} s)"
    )
