"""Secrets at rest: the key ring, AES-GCM sealing bound to its row, and the development key."""

from __future__ import annotations

import base64
import logging
import stat
import uuid
from pathlib import Path

import pytest

from llmbilling.config.settings import Settings
from llmbilling.errors import KeyRingError, SecretDecryptionError, UnknownKeyVersionError
from llmbilling.store.crypto import (
    EncryptedValue,
    KeyRing,
    SealedKeyCensus,
    SecretLocation,
    dev_key_ring_path,
    key_fingerprint,
    key_ring_from_settings,
)

KEY_A = base64.b64encode(b"a" * 32).decode()
KEY_B = base64.b64encode(b"b" * 32).decode()
LOCATION = SecretLocation("workspace", uuid.UUID(int=1), "OPENAI_API_KEY")


@pytest.fixture(autouse=True)
def no_deployment_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMBILLING_SECRET_KEYS", raising=False)


@pytest.mark.parametrize(
    ("text", "versions", "newest"),
    [
        (f"v1:{KEY_A}", (1,), 1),
        (f"v1:{KEY_A},v2:{KEY_B}", (1, 2), 2),
        (f"v7:{KEY_B}, v3:{KEY_A}", (3, 7), 7),
        (f"1:{KEY_A}", (1,), 1),
    ],
)
def test_newest_key_is_the_highest_version(
    text: str, versions: tuple[int, ...], newest: int
) -> None:
    ring = KeyRing.parse(text)
    assert ring.versions == versions
    assert ring.newest_version == newest


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("v1", "not 'v<version>:<base64 key>'"),
        ("v1:not base64!", "not valid base64"),
        (f"v1:{base64.b64encode(b'short').decode()}", "needs 32"),
        (f"v1:{KEY_A},v1:{KEY_B}", "listed twice"),
    ],
)
def test_invalid_key_rings_are_refused_without_echoing_keys(text: str, problem: str) -> None:
    with pytest.raises(KeyRingError, match=problem) as raised:
        KeyRing.parse(text)
    assert KEY_A not in raised.value.message
    assert KEY_B not in raised.value.message


def test_values_round_trip_and_every_sealing_is_different() -> None:
    ring = KeyRing.parse(f"v1:{KEY_A}")
    first = ring.encrypt("sk-SENTINEL", LOCATION)
    second = ring.encrypt("sk-SENTINEL", LOCATION)
    assert first.ciphertext != second.ciphertext
    assert ring.decrypt(first, LOCATION) == "sk-SENTINEL"
    assert "SENTINEL" not in first.ciphertext


def test_old_versions_still_decrypt_after_a_new_key_is_added() -> None:
    sealed_under_v1 = KeyRing.parse(f"v1:{KEY_A}").encrypt("value", LOCATION)
    ring = KeyRing.parse(f"v1:{KEY_A},v2:{KEY_B}")
    assert ring.decrypt(sealed_under_v1, LOCATION) == "value"
    assert ring.encrypt("value", LOCATION).key_version == 2


@pytest.mark.parametrize(
    "other",
    [
        SecretLocation("org", LOCATION.owner_id, LOCATION.name),
        SecretLocation("workspace", uuid.UUID(int=2), LOCATION.name),
        SecretLocation("workspace", LOCATION.owner_id, "ANTHROPIC_API_KEY"),
    ],
)
def test_a_value_moved_to_another_row_does_not_decrypt(other: SecretLocation) -> None:
    ring = KeyRing.parse(f"v1:{KEY_A}")
    sealed = ring.encrypt("value", LOCATION)
    with pytest.raises(SecretDecryptionError):
        ring.decrypt(sealed, other)


def test_a_version_missing_from_the_ring_is_named() -> None:
    ring = KeyRing.parse(f"v1:{KEY_A}")
    with pytest.raises(UnknownKeyVersionError, match="v9"):
        ring.decrypt(EncryptedValue("AAAA", 9), LOCATION)


def test_repr_names_versions_and_fingerprints_only() -> None:
    ring = KeyRing.parse(f"v1:{KEY_A},v2:{KEY_B}")
    fingerprint_a, fingerprint_b = key_fingerprint(b"a" * 32), key_fingerprint(b"b" * 32)
    assert repr(ring) == f"KeyRing(v1 {fingerprint_a}, v2 {fingerprint_b}; newest v2)"


def test_configured_key_ring_wins_over_the_development_one(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        secret_keys=f"v4:{KEY_A}",
    )
    assert key_ring_from_settings(settings, SealedKeyCensus.empty).versions == (4,)
    assert not (tmp_path / "db.sqlite3.keyring").exists()


def test_without_keys_sqlite_gets_a_private_development_key_ring_and_a_loud_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    with caplog.at_level(logging.WARNING):
        first = key_ring_from_settings(settings, SealedKeyCensus.empty)
    path = dev_key_ring_path(settings.database_url)
    assert path == tmp_path / "db.sqlite3.keyring"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key_text = path.read_text().strip()
    assert "DEVELOPMENT key ring" in caplog.text
    assert key_text.split(":", 1)[1] not in caplog.text
    sealed = first.encrypt("value", LOCATION)
    assert (
        key_ring_from_settings(settings, SealedKeyCensus.empty).decrypt(sealed, LOCATION) == "value"
    )


def test_without_keys_postgresql_refuses_to_invent_one() -> None:
    settings = Settings(_env_file=None, database_url="postgresql://postgres@127.0.0.1/x")
    with pytest.raises(KeyRingError, match="LLMBILLING_SECRET_KEYS"):
        key_ring_from_settings(settings, SealedKeyCensus.empty)
