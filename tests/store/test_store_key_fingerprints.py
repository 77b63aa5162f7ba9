"""Every sealed secret records which key sealed it (a fingerprint, never the key), and a start
whose key ring matches none of the stored secrets refuses before anything is sealed or a
development key is generated; ``secrets rotate`` carries the rows across keys."""

from __future__ import annotations

import base64
import logging
import secrets as random
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import UUID

import pytest
from sqlalchemy import select, update
from tests.store.db_fixtures import DatabaseFactory

from llmbilling.config.settings import Settings
from llmbilling.errors import KeyFingerprintMismatchError, KeyRingMismatchError
from llmbilling.service import admin
from llmbilling.service import secrets as secret_service
from llmbilling.service.context import ServiceContext
from llmbilling.store.crypto import (
    EncryptedValue,
    KeyRing,
    SecretLocation,
    dev_key_ring_path,
    key_fingerprint,
)
from llmbilling.store.tables import org_secrets, workspace_secrets

SECRET_VALUE = "sk-SENTINEL-value"
KEY_A, KEY_B = random.token_bytes(32), random.token_bytes(32)
RING_A = "v1:" + base64.b64encode(KEY_A).decode()
RING_B = "v1:" + base64.b64encode(KEY_B).decode()  # another key under the same version
RING_A_THEN_B = RING_A + ",v2:" + base64.b64encode(KEY_B).decode()
RING_B_AS_V2 = "v2:" + base64.b64encode(KEY_B).decode()

Start = Callable[[str | None], ServiceContext]


@pytest.fixture(autouse=True)
def no_deployment_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMBILLING_SECRET_KEYS", raising=False)


@pytest.fixture
def database_url(new_database: DatabaseFactory) -> str:
    return new_database()


@pytest.fixture
def start(database_url: str) -> Iterator[Start]:
    """Start a service context as ``serve`` does (``from_settings``, schema migrated) with the
    key ring text given (None: none configured)."""
    opened: list[ServiceContext] = []

    def started(key_ring_text: str | None) -> ServiceContext:
        settings = Settings(
            _env_file=None,
            database_url=database_url,
            secret_keys=key_ring_text,
            auto_migrate=True,
        )
        context = ServiceContext.from_settings(settings)
        opened.append(context)
        return context

    yield started
    for context in opened:
        context.close()


def _store_secrets(context: ServiceContext) -> tuple[UUID, UUID]:
    org = admin.create_org(context, "keys")
    workspace = admin.create_workspace(context, org.id, model="claude-opus-4-7")
    secret_service.set_secret(context, "org", org.id, "OPENAI_API_KEY", SECRET_VALUE)
    secret_service.set_secret(context, "workspace", workspace.id, "ANTHROPIC_API_KEY", SECRET_VALUE)
    return org.id, workspace.id


def _sealed_rows(context: ServiceContext) -> list[tuple[int, str | None, str]]:
    """(key version, key fingerprint, ciphertext) of every stored secret."""
    with context.store.engine.connect() as connection:
        return [
            (version, fingerprint, ciphertext)
            for table in (org_secrets, workspace_secrets)
            for version, fingerprint, ciphertext in connection.execute(
                select(table.c.key_version, table.c.key_fingerprint, table.c.ciphertext)
            )
        ]


def _forget_fingerprints(context: ServiceContext) -> None:
    """Make the rows look as they did before fingerprints were stored (migration 0004)."""
    with context.store.engine.begin() as connection:
        for table in (org_secrets, workspace_secrets):
            connection.execute(update(table).values(key_fingerprint=None))


# A development key ring exists for a SQLite file only: these run on SQLite alone.
sqlite_only = pytest.mark.parametrize("new_database", ["sqlite"], indirect=True)


def test_every_sealed_row_records_the_fingerprint_of_the_key_that_sealed_it(
    start: Start,
) -> None:
    context = start(RING_A)
    _store_secrets(context)
    assert {(version, fingerprint) for version, fingerprint, _ in _sealed_rows(context)} == {
        (1, key_fingerprint(KEY_A))
    }


def test_a_start_refuses_a_configured_key_ring_that_sealed_none_of_the_stored_secrets(
    start: Start,
) -> None:
    _store_secrets(start(RING_A))
    with pytest.raises(KeyRingMismatchError) as refused:
        start(RING_B)
    message = refused.value.message
    assert "LLMBILLING_SECRET_KEYS" in message
    assert "2 stored secrets" in message
    assert key_fingerprint(KEY_A) in message
    assert key_fingerprint(KEY_B) in message


@pytest.mark.parametrize("ring", [RING_A, RING_A_THEN_B], ids=["same key", "with a newer key"])
def test_a_start_with_a_key_ring_holding_the_sealing_key_succeeds(start: Start, ring: str) -> None:
    _, workspace_id = _store_secrets(start(RING_A))
    context = start(ring)
    assert secret_service.list_secrets(context, "workspace", workspace_id)[0].key_version == 1


def test_a_start_with_no_secret_stored_accepts_any_key_ring(start: Start) -> None:
    start(RING_A).close()
    assert start(RING_B).key_ring.newest_fingerprint == key_fingerprint(KEY_B)


@sqlite_only
def test_a_deleted_development_key_ring_is_refused_and_not_generated_again(
    start: Start, database_url: str
) -> None:
    _store_secrets(start(None))
    path = dev_key_ring_path(database_url)
    assert path is not None
    path.unlink()
    with pytest.raises(KeyRingMismatchError, match=str(path)):
        start(None)
    assert not path.exists()


@sqlite_only
def test_a_replaced_development_key_ring_is_refused(start: Start, database_url: str) -> None:
    _store_secrets(start(None))
    path = dev_key_ring_path(database_url)
    assert path is not None
    path.write_text(RING_B + "\n")
    with pytest.raises(KeyRingMismatchError, match="2 stored secrets"):
        start(None)
    assert path.read_text() == RING_B + "\n"


@sqlite_only
def test_the_development_key_ring_that_sealed_the_secrets_starts(
    start: Start, database_url: str
) -> None:
    org_id, _ = _store_secrets(start(None))
    assert secret_service.list_secrets(start(None), "org", org_id)[0].name == "OPENAI_API_KEY"


def test_rotation_across_keys_records_the_new_keys_fingerprint(start: Start) -> None:
    _store_secrets(start(RING_A))
    rotating = start(RING_A_THEN_B)
    assert secret_service.pending_rotation(rotating) == 2
    assert secret_service.rotate_secrets(rotating).total == 2
    rows = _sealed_rows(rotating)
    assert {(version, fingerprint) for version, fingerprint, _ in rows} == {
        (2, key_fingerprint(KEY_B))
    }
    # The old key may now leave the ring.
    assert secret_service.pending_rotation(start(RING_B_AS_V2)) == 0


def test_rows_without_a_fingerprint_are_matched_by_decrypting_a_sample(start: Start) -> None:
    context = start(RING_A)
    _store_secrets(context)
    _forget_fingerprints(context)
    with pytest.raises(KeyRingMismatchError, match="unrecorded"):
        start(RING_B)
    assert start(RING_A).key_ring.versions == (1,)


def test_rotation_gives_rows_without_a_fingerprint_one_under_the_same_key(start: Start) -> None:
    context = start(RING_A)
    _store_secrets(context)
    _forget_fingerprints(context)
    assert secret_service.pending_rotation(context) == 2
    assert secret_service.rotate_secrets(context).total == 2
    assert {(v, f) for v, f, _ in _sealed_rows(context)} == {(1, key_fingerprint(KEY_A))}


def test_a_version_holding_another_key_is_named_not_reported_as_tampering() -> None:
    location = SecretLocation("org", UUID(int=7), "OPENAI_API_KEY")
    sealed = KeyRing.parse(RING_A).encrypt(SECRET_VALUE, location)
    with pytest.raises(KeyFingerprintMismatchError) as refused:
        KeyRing.parse(RING_B).decrypt(sealed, location)
    assert refused.value.message == (
        f"the secret was sealed under key v1 with fingerprint {key_fingerprint(KEY_A)}, but the"
        f" key ring's v1 has fingerprint {key_fingerprint(KEY_B)}: another key under the same"
        " version"
    )
    unrecorded = EncryptedValue(sealed.ciphertext, sealed.key_version)
    assert KeyRing.parse(RING_A).decrypt(unrecorded, location) == SECRET_VALUE


def test_neither_the_database_nor_the_logs_hold_a_key(
    start: Start, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        context = start(RING_A_THEN_B)
        _store_secrets(context)
        secret_service.rotate_secrets(context)
        with pytest.raises(KeyRingMismatchError) as refused:
            start(RING_A)  # v1 only: the rows are now under v2
    shown = caplog.text + refused.value.message + repr(context.key_ring)
    shown += repr(_sealed_rows(context))
    files = b""
    if database_url.startswith("sqlite"):
        database = Path(database_url.removeprefix("sqlite:///"))
        files = b"".join(path.read_bytes() for path in database.parent.glob(database.name + "*"))
    for key in (KEY_A, KEY_B):
        for form in (base64.b64encode(key).decode(), key.hex()):
            assert form.lower() not in shown.lower()
            assert form.encode() not in files
        assert key not in files
