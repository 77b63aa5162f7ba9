"""Secrets at rest: AES-256-GCM under a versioned key ring.

Each stored value is ``base64(nonce || ciphertext+tag)`` beside the version of the key that
sealed it. The associated data binds a ciphertext to its row (scope, owner id, env name), so a
value copied into another row, or another tenant's row, fails to decrypt instead of leaking.
Nothing here logs or returns a key; reprs name versions only.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.engine import make_url

from llmbilling.config.settings import Settings
from llmbilling.errors import KeyRingError, SecretDecryptionError, UnknownKeyVersionError

KEY_BYTES = 32
NONCE_BYTES = 12
DEV_KEY_RING_SUFFIX = ".keyring"
_ENTRY = re.compile(r"^v?(\d+):(.+)$")

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


@dataclass(frozen=True, slots=True)
class EncryptedValue:
    """A sealed value as stored: base64 text and the version of the key that sealed it."""

    ciphertext: str
    key_version: int


class KeyRing:
    """Versioned AES-256-GCM keys. The highest version encrypts; every version decrypts."""

    __slots__ = ("_ciphers", "newest_version")

    def __init__(self, keys: dict[int, bytes]) -> None:
        if not keys:
            raise KeyRingError("the key ring is empty")
        for version, key in keys.items():
            if len(key) != KEY_BYTES:
                raise KeyRingError(
                    f"key v{version} is {len(key)} bytes; AES-256-GCM needs {KEY_BYTES}"
                )
        self._ciphers = {version: AESGCM(key) for version, key in keys.items()}
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

    def encrypt(self, plaintext: str, location: SecretLocation) -> EncryptedValue:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.newest_version].encrypt(
            nonce, plaintext.encode(), location.associated_data()
        )
        return EncryptedValue(base64.b64encode(nonce + sealed).decode(), self.newest_version)

    def decrypt(self, stored: EncryptedValue, location: SecretLocation) -> str:
        cipher = self._ciphers.get(stored.key_version)
        if cipher is None:
            raise UnknownKeyVersionError(stored.key_version, self.versions)
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

    def __repr__(self) -> str:
        listed = ", ".join(f"v{v}" for v in self.versions)
        return f"KeyRing({listed}; newest v{self.newest_version})"


def dev_key_ring_path(database_url: str) -> Path | None:
    """Where a development key ring lives: beside the SQLite file. None for other databases."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    database = Path(url.database)
    return database.with_name(database.name + DEV_KEY_RING_SUFFIX)


def key_ring_from_settings(settings: Settings) -> KeyRing:
    """The configured key ring; on SQLite without one, a generated development key ring.

    Raises :class:`KeyRingError` when none is configured and none may be generated.
    """
    if settings.secret_keys is not None and settings.secret_keys.get_secret_value().strip():
        return KeyRing.parse(settings.secret_keys.get_secret_value())
    path = dev_key_ring_path(settings.database_url)
    if path is None:
        raise KeyRingError(
            "no secret key ring configured: set LLMBILLING_SECRET_KEYS to"
            " 'v1:<base64 of 32 random bytes>' (a development key ring is generated only"
            " for a SQLite file database)"
        )
    return _load_or_create_dev_key_ring(path)


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
