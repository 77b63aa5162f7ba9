"""The one exception hierarchy: every error carries a stable machine ``code`` and a message."""

from __future__ import annotations

from collections.abc import Iterable


class LlmBillingError(Exception):
    """Base of every error llmbilling raises on purpose.

    ``code`` is a stable machine string callers may switch on; ``message`` is for people.
    """

    code: str = "LLMBILLING_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class InvalidInputError(LlmBillingError):
    """A value given by a caller is not allowed; names the field and, when finite, the choices."""

    code = "INVALID_INPUT"

    def __init__(self, field: str, problem: str, allowed: Iterable[str] | None = None) -> None:
        self.field = field
        self.allowed = tuple(allowed) if allowed is not None else None
        message = f"{field}: {problem}"
        if self.allowed is not None:
            message += f" (allowed: {', '.join(self.allowed)})"
        super().__init__(message)

    def to_dict(self) -> dict[str, str]:
        return {**super().to_dict(), "field": self.field}


class DocumentError(LlmBillingError):
    """A configuration document (registry, policy) could not be read or is not valid.

    ``file`` is the path given, ``path`` the location inside the document (e.g.
    ``providers[2].models.claude-code.prefix[0]``), ``problem`` what is wrong there.
    """

    code = "DOCUMENT_INVALID"

    def __init__(self, file: str, path: str, problem: str) -> None:
        self.file = file
        self.path = path
        self.problem = problem
        where = f"{file}: {path}" if path else file
        super().__init__(f"{where}: {problem}")


class RegistryError(DocumentError):
    """A provider registry file could not be read or is not valid."""

    code = "REGISTRY_INVALID"


class PolicyError(DocumentError):
    """A precedence policy file could not be read or is not valid."""

    code = "POLICY_INVALID"
