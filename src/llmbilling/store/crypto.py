"""Secrets at rest: AES-256-GCM under a versioned key ring.

Each stored value is ``base64(nonce || ciphertext+tag)`` beside the version of the key that
sealed it and that key's fingerprint (:func:`key_fingerprint`: an HMAC of a fixed label under
the key, so it identifies the key without revealing it). The associated data binds a
ciphertext to its row (scope, owner id, env name), so a value copied into another row, or
another tenant's row, fails to decrypt instead of leaking.

A key ring that matches none of the stored rows (the key file deleted or replaced, the wrong
``LLMBILLING_SECRET_KEYS``) is refused when it is loaded (:meth:`KeyRing.check_matches`), and
a development key is generated only while no sealed row exists. Nothing here logs or returns a
key; reprs name versions and fingerprints only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.engine import make_url

from llmbilling.config.settings import Settings
from llmbilling.errors import (
    KeyFingerprintMismatchError,
    KeyRingError,
    KeyRingMismatchError,
    SecretDecryptionError,
    SecretsError,
    UnknownKeyVersionError,
)

KEY_BYTES = 32
NONCE_BYTES = 12
DEV_KEY_RING_SUFFIX = ".keyring"
_ENTRY = re.compile(r"^v?(\d+):(.+)$")
# Domain separation: the fingerprint is no other use of the key (AES-GCM never sees this).
_FINGERPRINT_LABEL = b"llmbilling key id"
FINGERPRINT_HEX_DIGITS = 16

log = logging.getLogger(__name__)

SecretScopeName = Literal["org", "workspace"]


@dataclass(frozen=True, slots=True)
class SecretLocation:
    """Where a secret lives; sealed into its ciphertext as associated data."""

    scope: SecretScopeName
    owner_id: UUID
    name: str

    def associated_data(self) -> bytes:
        return f"llmbilling/{self.scope}/{self.owner_id}/{self.name}".encode()


def key_fingerprint(key: bytes) -> str:
    """The key's id as stored beside what it sealed: the first 16 hex digits of
    HMAC-SHA256(key, "llmbilling key id"). Never the key, nor a plain hash of it."""
    digest = hmac.new(key, _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()
    return digest[:FINGERPRINT_HEX_DIGITS]


@dataclass(frozen=True, slots=True)
class EncryptedValue:
    """A sealed value as stored: base64 text, the version of the key that sealed it, and that
    key's fingerprint (None for a row sealed before fingerprints were stored, or read by a
    statement that does not select it: then only the version picks the key)."""

    ciphertext: str
    key_version: int
    key_fingerprint: str | None = None


@dataclass(frozen=True, slots=True)
class SealedKeyCensus:
    """What the stored secrets say about the keys that sealed them: how many rows, the
    distinct fingerprints recorded, and, for rows without one, a sample row per key version
    (a key that authenticates a sample sealed it)."""

    rows: int
    fingerprints: frozenset[str]
    unfingerprinted: tuple[tuple[SecretLocation, EncryptedValue], ...] = ()

    @classmethod
    def empty(cls) -> SealedKeyCensus:
        return cls(0, frozenset())


class KeyRing:
    """Versioned AES-256-GCM keys. The highest version encrypts; every version decrypts."""

    __slots__ = ("_ciphers", "fingerprints", "newest_version")

    def __init__(self, keys: dict[int, bytes]) -> None:
        if not keys:
            raise KeyRingError("the key ring is empty")
        for version, key in keys.items():
            if len(key) != KEY_BYTES:
                raise KeyRingError(
                    f"key v{version} is {len(key)} bytes; AES-256-GCM needs {KEY_BYTES}"
                )
        self._ciphers = {version: AESGCM(key) for version, key in keys.items()}
        self.fingerprints: dict[int, str] = {
            version: key_fingerprint(key) for version, key in sorted(keys.items())
        }
        self.newest_version = max(keys)

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """Parse ``"v1:<base64>,v2:<base64>"``. Errors name the entry, never the key bytes."""
        keys: dict[int, bytes] = {}
        for position, raw_entry in enumerate(text.split(",")):
            entry = raw_entry.strip()
            if not entry:
                continue
            match = _ENTRY.match(entry)
            if match is None:
                raise KeyRingError(
                    f"key ring entry {position + 1} is not 'v<version>:<base64 key>'"
                )
            version = int(match.group(1))
            try:
                key = base64.b64decode(match.group(2), validate=True)
            except binascii.Error:
                raise KeyRingError(f"key v{version} is not valid base64") from None
            if version in keys:
                raise KeyRingError(f"key v{version} is listed twice")
            keys[version] = key
        return cls(keys)

    @staticmethod
    def new_key_text(version: int) -> str:
        """A fresh random key ring entry, for ``llmbilling`` setup and tests."""
        return f"v{version}:" + base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()

    @property
    def versions(self) -> tuple[int, ...]:
        return tuple(sorted(self._ciphers))

    @property
    def newest_fingerprint(self) -> str:
        return self.fingerprints[self.newest_version]

    def encrypt(self, plaintext: str, location: SecretLocation) -> EncryptedValue:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.newest_version].encrypt(
            nonce, plaintext.encode(), location.associated_data()
        )
        return EncryptedValue(
            base64.b64encode(nonce + sealed).decode(), self.newest_version, self.newest_fingerprint
        )

    def decrypt(self, stored: EncryptedValue, location: SecretLocation) -> str:
        """The plaintext; the key is the ring's key of the stored version, which must have the
        stored fingerprint (when one is stored): :class:`KeyFingerprintMismatchError` names
        both when it has not (the ring holds another key under that version)."""
        cipher = self._ciphers.get(stored.key_version)
        if cipher is None:
            raise UnknownKeyVersionError(stored.key_version, self.versions)
        present = self.fingerprints[stored.key_version]
        if stored.key_fingerprint is not None and stored.key_fingerprint != present:
            raise KeyFingerprintMismatchError(stored.key_version, stored.key_fingerprint, present)
        try:
            blob = base64.b64decode(stored.ciphertext, validate=True)
            plaintext = cipher.decrypt(
                blob[:NONCE_BYTES], blob[NONCE_BYTES:], location.associated_data()
            )
        except (binascii.Error, InvalidTag, ValueError):
            raise SecretDecryptionError(
                f"{location.scope} secret {location.name} of {location.owner_id} does not"
                f" decrypt under key v{stored.key_version}"
            ) from None
        return plaintext.decode()

    def check_matches(self, census: SealedKeyCensus, source: str) -> None:
        """Return when no secret is stored, or the ring holds a key that sealed one (by
        fingerprint, or for rows without one by decrypting a sample). Otherwise raise
        :class:`KeyRingMismatchError` naming ``source`` (where the ring came from), the row
        count and the fingerprints stored and held. A ring that lacks some stored
        fingerprints while holding others is logged, not refused: those rows fail alone."""
        if census.rows == 0:
            return
        held = set(self.fingerprints.values())
        if census.fingerprints & held or any(
            self._authenticates(sealed, location) for location, sealed in census.unfingerprinted
        ):
            missing = sorted(census.fingerprints - held)
            if missing:
                log.warning(
                    "the key ring from %s lacks keys some stored secrets were sealed under"
                    " (fingerprints %s); those secrets cannot be read",
                    source,
                    ", ".join(missing),
                )
            return
        raise KeyRingMismatchError(
            source, census.rows, tuple(sorted(census.fingerprints)), self.fingerprints
        )

    def _authenticates(self, sealed: EncryptedValue, location: SecretLocation) -> bool:
        try:
            self.decrypt(sealed, location)
        except SecretsError:
            return False
        return True

    def __repr__(self) -> str:
        listed = ", ".join(f"v{v} {self.fingerprints[v]}" for v in self.versions)
        return f"KeyRing({listed}; newest v{self.newest_version})"


def dev_key_ring_path(database_url: str) -> Path | None:
    """Where a development key ring lives: beside the SQLite file. None for other databases."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    database = Path(url.database)
    return database.with_name(database.name + DEV_KEY_RING_SUFFIX)


def key_ring_from_settings(settings: Settings, census: Callable[[], SealedKeyCensus]) -> KeyRing:
    """The configured key ring; on SQLite without one, the development key ring beside the
    database file, generated only while ``census()`` (the stored secrets) counts no row.

    Raises :class:`KeyRingError` when none is configured and none may be generated, and
    :class:`KeyRingMismatchError` when the ring matches none of the stored secrets (before
    anything is generated).
    """
    if settings.secret_keys is not None and settings.secret_keys.get_secret_value().strip():
        ring = KeyRing.parse(settings.secret_keys.get_secret_value())
        ring.check_matches(census(), "LLMBILLING_SECRET_KEYS")
        return ring
    path = dev_key_ring_path(settings.database_url)
    if path is None:
        raise KeyRingError(
            "no secret key ring configured: set LLMBILLING_SECRET_KEYS to"
            " 'v1:<base64 of 32 random bytes>' (a development key ring is generated only"
            " for a SQLite file database)"
        )
    stored = census()
    if not path.exists() and stored.rows:
        raise KeyRingMismatchError(str(path), stored.rows, tuple(sorted(stored.fingerprints)), {})
    ring = _load_or_create_dev_key_ring(path)
    ring.check_matches(stored, str(path))
    return ring


def _load_or_create_dev_key_ring(path: Path) -> KeyRing:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first; read theirs
        else:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(KeyRing.new_key_text(1) + "\n")
            log.warning(
                "NO LLMBILLING_SECRET_KEYS CONFIGURED: generated a DEVELOPMENT key ring at %s."
                " Anyone who can read that file can decrypt the stored secrets."
                " Configure LLMBILLING_SECRET_KEYS for any real deployment.",
                path,
            )
    else:
        log.info("no LLMBILLING_SECRET_KEYS configured: using the development key ring at %s", path)
    return KeyRing.parse(path.read_text(encoding="utf-8"))
