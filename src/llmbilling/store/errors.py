"""Errors of the storage layer. Messages never contain a secret value or a database password."""

from __future__ import annotations

from typing import ClassVar

from llmbilling.errors import LlmBillingError

# CLI exit statuses; 2 is bad input, 3-5 belong to the provisioning errors (core.provisioning).
STORE_UNAVAILABLE_EXIT = 7
SCHEMA_NOT_CURRENT_EXIT = 8
SECRETS_EXIT = 9


class KeyRingError(LlmBillingError):
    """The secret key ring is missing or not valid (configuration, not data)."""

    code = "KEY_RING_INVALID"
    exit_code: ClassVar[int] = SECRETS_EXIT


class UnknownKeyVersionError(LlmBillingError):
    """A stored secret was encrypted under a key version the ring does not hold."""

    code = "KEY_VERSION_UNKNOWN"
    exit_code: ClassVar[int] = SECRETS_EXIT

    def __init__(self, version: int, known: tuple[int, ...]) -> None:
        self.version = version
        listed = ", ".join(f"v{v}" for v in known) or "none"
        super().__init__(f"key version v{version} is not in the key ring (have: {listed})")


class SecretDecryptionError(LlmBillingError):
    """A stored secret failed authentication: wrong key, tampered, or moved between rows."""

    code = "SECRET_UNDECRYPTABLE"
    exit_code: ClassVar[int] = SECRETS_EXIT


class StoreUnavailableError(LlmBillingError):
    """The database could not be reached or failed mid-operation."""

    code = "STORE_UNAVAILABLE"
    exit_code: ClassVar[int] = STORE_UNAVAILABLE_EXIT


class SchemaNotCurrentError(LlmBillingError):
    """The database schema is missing or behind the code; ``llmbilling db upgrade`` fixes it."""

    code = "SCHEMA_NOT_CURRENT"
    exit_code: ClassVar[int] = SCHEMA_NOT_CURRENT_EXIT
