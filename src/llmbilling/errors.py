"""The one exception hierarchy, and the closed set of machine codes.

Every error llmbilling raises on purpose is defined here, derives from :class:`LlmBillingError`
and carries a stable machine ``code`` (an :class:`ErrorCode` member) and a message for people.
Errors come in families, so an adapter maps a whole family at once (``cli/app.py``
``EXIT_CODES``, ``api/problems.py`` ``STATUS_BY_ERROR``, both looked up along the class's MRO):

- :class:`InvalidInputError`: a value, flag or document the caller gave is not allowed;
- :class:`NotFoundError`: no such object (workspace, org, token, what-if job, route);
- :class:`ConflictError`: the request is valid but the stored state does not allow it now;
- :class:`TooManyRequestsError`: the caller's org asks for more than it may right now;
- :class:`ProvisionError`: no safe environment can be built for the decided mode;
- :class:`StoreError`: the database or the secret key ring cannot serve the operation;
- and the caller's credentials (:class:`UnauthenticatedError`, :class:`ForbiddenError`).

A family with no ``code`` of its own is never raised itself: each of its members names one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from uuid import UUID


class ErrorCode(StrEnum):
    """Every stable machine code, closed. A member's value is what every wire shape carries
    (decision records, problem bodies, CLI error lines, batch lines)."""

    LLMBILLING_ERROR = "LLMBILLING_ERROR"
    # Invalid input
    INVALID_INPUT = "INVALID_INPUT"
    PROPOSAL_INVALID = "PROPOSAL_INVALID"
    DOCUMENT_INVALID = "DOCUMENT_INVALID"
    REGISTRY_INVALID = "REGISTRY_INVALID"
    POLICY_INVALID = "POLICY_INVALID"
    ENV_VALUE_UNREPRESENTABLE = "ENV_VALUE_UNREPRESENTABLE"
    # The caller's credentials
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    # Not found
    NOT_FOUND = "NOT_FOUND"
    WORKSPACE_NOT_FOUND = "WORKSPACE_NOT_FOUND"
    ORG_NOT_FOUND = "ORG_NOT_FOUND"
    TOKEN_NOT_FOUND = "TOKEN_NOT_FOUND"
    WHATIF_JOB_NOT_FOUND = "WHATIF_JOB_NOT_FOUND"
    PLAN_NOT_FOUND = "PLAN_NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    # Conflict with the stored state
    ALREADY_EXISTS = "ALREADY_EXISTS"
    PRECONDITION_FAILED = "PRECONDITION_FAILED"
    PLAN_STALE = "PLAN_STALE"
    PLAN_EXPIRED = "PLAN_EXPIRED"
    PLAN_ALREADY_APPLIED = "PLAN_ALREADY_APPLIED"
    PLAN_NEEDS_APPROVAL = "PLAN_NEEDS_APPROVAL"
    PLAN_SELF_APPROVAL = "PLAN_SELF_APPROVAL"
    PLAN_NOT_DEPLOYED = "PLAN_NOT_DEPLOYED"
    PLAN_NEEDS_SECRET_VALUE = "PLAN_NEEDS_SECRET_VALUE"
    DANGER_NOT_ACKNOWLEDGED = "DANGER_NOT_ACKNOWLEDGED"
    # Provisioning
    PROVISION_FAILED = "PROVISION_FAILED"
    MISSING_MODEL = "MISSING_MODEL"
    MISSING_PLATFORM_PROXY = "MISSING_PLATFORM_PROXY"
    MISSING_BYOK_CREDENTIAL = "MISSING_BYOK_CREDENTIAL"
    # The store
    STORE_UNAVAILABLE = "STORE_UNAVAILABLE"
    DATABASE_NOT_FOUND = "DATABASE_NOT_FOUND"
    SCHEMA_NOT_CURRENT = "SCHEMA_NOT_CURRENT"
    KEY_RING_INVALID = "KEY_RING_INVALID"
    KEY_VERSION_UNKNOWN = "KEY_VERSION_UNKNOWN"
    KEY_RING_MISMATCH = "KEY_RING_MISMATCH"
    KEY_FINGERPRINT_MISMATCH = "KEY_FINGERPRINT_MISMATCH"
    SECRET_UNDECRYPTABLE = "SECRET_UNDECRYPTABLE"
    # Errors that travel beside a decision (core/rungs.py), never raised
    OVERRIDE_READ_FAILED = "OVERRIDE_READ_FAILED"
    REGISTRY_UNAVAILABLE = "REGISTRY_UNAVAILABLE"
    # The adapters' own answers, never raised: an unexpected fault (API 500, a failed
    # what-if job), a body refused before it is parsed (api/limits.py, 413) and a request head
    # refused by the HTTP protocol (api/limits.py, 431)
    INTERNAL_ERROR = "INTERNAL_ERROR"
    REQUEST_TOO_LARGE = "REQUEST_TOO_LARGE"
    HEADERS_TOO_LARGE = "HEADERS_TOO_LARGE"
    # A what-if job's own outcome, never raised: its worker stopped on its last attempt
    # (service/whatif_jobs.py)
    WHATIF_INTERRUPTED = "WHATIF_INTERRUPTED"
    # Too many requests from one org
    WHATIF_QUOTA_EXCEEDED = "WHATIF_QUOTA_EXCEEDED"
    WHATIF_RATE_LIMITED = "WHATIF_RATE_LIMITED"


class LlmBillingError(Exception):
    """Base of every error llmbilling raises on purpose.

    ``code`` is a stable machine code callers may switch on; ``message`` is for people.
    """

    code: ErrorCode = ErrorCode.LLMBILLING_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code.value, "message": self.message}


# --- Invalid input -----------------------------------------------------------------------------


class InvalidInputError(LlmBillingError):
    """A value given by a caller is not allowed; names the field and, when finite, the choices.

    Also the family of every input error: a document that is not valid (:class:`DocumentError`,
    which names a file and a path instead of a field, so its ``field`` is None).
    """

    code = ErrorCode.INVALID_INPUT
    field: str | None
    allowed: tuple[str, ...] | None

    def __init__(self, field: str, problem: str, allowed: Iterable[str] | None = None) -> None:
        self.field = field
        self.allowed = tuple(allowed) if allowed is not None else None
        message = f"{field}: {problem}"
        if self.allowed is not None:
            message += f" (allowed: {', '.join(self.allowed)})"
        super().__init__(message)

    def to_dict(self) -> dict[str, str]:
        if self.field is None:
            return super().to_dict()
        return {**super().to_dict(), "field": self.field}


class ProposalInvalidError(InvalidInputError):
    """A proposed policy or registry is well-formed but not a valid document; ``field`` is the
    path inside it."""

    code = ErrorCode.PROPOSAL_INVALID


class DocumentError(InvalidInputError):
    """A configuration document (registry, policy) could not be read or is not valid.

    ``file`` is the path given, ``path`` the location inside the document (e.g.
    ``providers[2].models.claude-code.prefix[0]``), ``problem`` what is wrong there.
    """

    code = ErrorCode.DOCUMENT_INVALID

    def __init__(self, file: str, path: str, problem: str) -> None:
        self.file = file
        self.path = path
        self.problem = problem
        self.field = None
        self.allowed = None
        where = f"{file}: {path}" if path else file
        LlmBillingError.__init__(self, f"{where}: {problem}")


class RegistryError(DocumentError):
    """A provider registry file could not be read or is not valid."""

    code = ErrorCode.REGISTRY_INVALID


class PolicyError(DocumentError):
    """A precedence policy file could not be read or is not valid."""

    code = ErrorCode.POLICY_INVALID


class EnvValueUnrepresentableError(InvalidInputError):
    """An env var cannot be written in the chosen output format without changing it (e.g. a
    newline for docker's env file, NUL for a shell). ``field`` is ``--format``; ``variable``
    names the env var; ``allowed`` lists the formats that carry it. Never holds the value: it
    may be a secret."""

    code = ErrorCode.ENV_VALUE_UNREPRESENTABLE

    def __init__(
        self, variable: str, output_format: str, holds: str, carried_by: Iterable[str]
    ) -> None:
        self.variable = variable
        self.output_format = output_format
        super().__init__(
            "--format",
            f"env var {variable} holds {holds}, which {output_format} cannot carry",
            allowed=carried_by,
        )


# --- The caller's credentials ------------------------------------------------------------------


class UnauthenticatedError(LlmBillingError):
    """No bearer token, or one that is unknown or revoked."""

    code = ErrorCode.UNAUTHENTICATED

    def __init__(self) -> None:
        super().__init__("a valid bearer token is required (Authorization: Bearer <token>)")


class ForbiddenError(LlmBillingError):
    """The token may see the object but its scope does not allow this action."""

    code = ErrorCode.FORBIDDEN

    def __init__(self, needed: str) -> None:
        super().__init__(f"this token's scope does not allow {needed}")


# --- Not found ---------------------------------------------------------------------------------


class NotFoundError(LlmBillingError):
    """Family: no such object (or one outside the caller's org, which looks the same)."""


class WorkspaceNotFoundError(NotFoundError):
    """No workspace has this id."""

    code = ErrorCode.WORKSPACE_NOT_FOUND

    def __init__(self, workspace_id: UUID) -> None:
        self.workspace_id = workspace_id
        super().__init__(f"no workspace with id {workspace_id}")


class OrgNotFoundError(NotFoundError):
    """No organization has this id."""

    code = ErrorCode.ORG_NOT_FOUND

    def __init__(self, org_id: UUID) -> None:
        self.org_id = org_id
        super().__init__(f"no organization with id {org_id}")


class TokenNotFoundError(NotFoundError):
    """No token has this id."""

    code = ErrorCode.TOKEN_NOT_FOUND

    def __init__(self, token_id: UUID) -> None:
        self.token_id = token_id
        super().__init__(f"no token with id {token_id}")


class WhatIfJobNotFoundError(NotFoundError):
    """No such job in this process (never started, or no longer kept), or not the caller's."""

    code = ErrorCode.WHATIF_JOB_NOT_FOUND

    def __init__(self, job_id: UUID) -> None:
        super().__init__(f"no what-if job {job_id}")


class PlanNotFoundError(NotFoundError):
    """No change plan has this id (or it belongs to an org the caller cannot read)."""

    code = ErrorCode.PLAN_NOT_FOUND

    def __init__(self, plan_id: UUID) -> None:
        self.plan_id = plan_id
        super().__init__(f"no change plan with id {plan_id}")


class RouteNotFoundError(NotFoundError):
    """No API route has this path."""

    code = ErrorCode.NOT_FOUND


class MethodNotAllowedError(LlmBillingError):
    """The route exists but does not take this method."""

    code = ErrorCode.METHOD_NOT_ALLOWED


# --- Too many requests -----------------------------------------------------------------------


class TooManyRequestsError(LlmBillingError):
    """Family: the caller's org asked for more than it may right now; ``retry_after`` is the
    whole number of seconds after which asking again can succeed."""

    def __init__(self, message: str, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"{message}; retry in {retry_after} s")


class WhatIfQuotaExceededError(TooManyRequestsError):
    """The org already has as many what-if jobs queued or running as it may."""

    code = ErrorCode.WHATIF_QUOTA_EXCEEDED

    def __init__(self, active: int, retry_after: int) -> None:
        super().__init__(
            f"this org already has {active} what-if jobs queued or running, its limit",
            retry_after,
        )


class WhatIfRateLimitedError(TooManyRequestsError):
    """The org started what-if jobs faster than its rate allows."""

    code = ErrorCode.WHATIF_RATE_LIMITED

    def __init__(self, per_minute: float, retry_after: int) -> None:
        super().__init__(
            f"this org starts at most {per_minute:g} what-if jobs a minute", retry_after
        )


# --- Conflict with the stored state ------------------------------------------------------------


class ConflictError(LlmBillingError):
    """Family: the request is valid, but the stored state does not allow it as it stands."""


class AlreadyExistsError(ConflictError):
    """A create named an id that is already taken."""

    code = ErrorCode.ALREADY_EXISTS


class PreconditionFailedError(ConflictError):
    """A conditional write expected a version of the stored state that is no longer current."""

    code = ErrorCode.PRECONDITION_FAILED

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} changed since it was read; read it again and retry")


class ChangeConflictError(ConflictError):
    """Family: a change (or its plan) refused as the stored state stands; ``details`` are
    plain JSON values a problem body carries beside the message (what moved, which danger
    classes with how many workspaces)."""

    def __init__(self, message: str, details: Mapping[str, object]) -> None:
        self.details = dict(details)
        super().__init__(message)


class PlanStaleError(ChangeConflictError):
    """An input the plan's preview read has changed since: the preview may no longer hold."""

    code = ErrorCode.PLAN_STALE

    def __init__(self, moved: Iterable[str]) -> None:
        families = sorted(moved)
        super().__init__(
            f"what the plan was previewed on changed since ({', '.join(families)}); "
            "preview the change again",
            {"moved": families},
        )


class PlanExpiredError(ChangeConflictError):
    """The plan outlived its time to be applied."""

    code = ErrorCode.PLAN_EXPIRED

    def __init__(self, expired_at: str) -> None:
        super().__init__(
            f"the plan expired at {expired_at}; preview the change again",
            {"expired_at": expired_at},
        )


class PlanAlreadyAppliedError(ChangeConflictError):
    """A plan is applied at most once."""

    code = ErrorCode.PLAN_ALREADY_APPLIED

    def __init__(self, applied_at: str) -> None:
        super().__init__(
            f"the plan was already applied at {applied_at}", {"applied_at": applied_at}
        )


class PlanNeedsApprovalError(ChangeConflictError):
    """A dangerous plan needs a second admin's approval first (the deployment asks so)."""

    code = ErrorCode.PLAN_NEEDS_APPROVAL

    def __init__(self, dangers: Mapping[str, int]) -> None:
        named = ", ".join(f"{danger} ({count})" for danger, count in dangers.items())
        super().__init__(
            f"this plan would create danger classes ({named}): another admin must approve "
            "it before it is applied",
            {"dangers": dict(dangers)},
        )


class PlanSelfApprovalError(ChangeConflictError):
    """A plan is approved by someone other than its proposer."""

    code = ErrorCode.PLAN_SELF_APPROVAL

    def __init__(self, proposer: str) -> None:
        super().__init__(
            f"the plan was proposed by {proposer}: a different token must approve it",
            {"proposed_by": proposer},
        )


class PlanNotDeployedError(ChangeConflictError):
    """A deployment-level plan is verified after its deploy: the running deployment is not
    the proposed one yet."""

    code = ErrorCode.PLAN_NOT_DEPLOYED

    def __init__(self, waiting: Iterable[str]) -> None:
        families = sorted(waiting)
        super().__init__(
            f"the running deployment does not run this plan's change yet ({', '.join(families)}):"
            " deploy it, then apply the plan to verify it",
            {"waiting": families},
        )


class PlanNeedsSecretValueError(ChangeConflictError):
    """A plan that sets a secret applies only with the secret's value (never stored in the
    plan); the apply gave none."""

    code = ErrorCode.PLAN_NEEDS_SECRET_VALUE

    def __init__(self, name: str) -> None:
        super().__init__(
            f"value: this plan sets the secret {name}: give its value to apply it",
            {"field": "value", "name": name},
        )


class DangerNotAcknowledgedError(ChangeConflictError):
    """A write would create danger-class workspaces the request did not acknowledge by name."""

    code = ErrorCode.DANGER_NOT_ACKNOWLEDGED

    def __init__(self, dangers: Mapping[str, int], unacknowledged: Iterable[str]) -> None:
        missing = sorted(unacknowledged)
        named = ", ".join(f"{danger} ({dangers[danger]})" for danger in missing)
        super().__init__(
            f"this write would create danger classes ({named}); acknowledge each by name "
            "to write anyway",
            {"dangers": dict(dangers), "unacknowledged": missing},
        )


# --- Provisioning ------------------------------------------------------------------------------


class ProvisionError(LlmBillingError):
    """No safe env can be built; each subclass names why (and the CLI exits distinctly)."""

    code = ErrorCode.PROVISION_FAILED


class MissingModelError(ProvisionError):
    """There is no effective model: the platform never picks one silently."""

    code = ErrorCode.MISSING_MODEL

    def __init__(self, workspace_id: str | None = None) -> None:
        self.workspace_id = workspace_id
        whose = f"workspace {workspace_id}" if workspace_id else "the workspace"
        super().__init__(
            f"no model for {whose}: the request names none, none is stored, and neither"
            " MOLECULE_MODEL nor MODEL is set; the platform never picks a model"
        )


class MissingPlatformProxyError(ProvisionError):
    """``platform_managed`` was decided but the deployment's proxy is not configured.

    ``missing`` holds ``"base URL"`` and/or ``"usage token"``; the message names the
    deployment settings each is read from (``read_from``).
    """

    code = ErrorCode.MISSING_PLATFORM_PROXY

    def __init__(self, read_from: Mapping[str, tuple[str, ...]]) -> None:
        self.missing = tuple(read_from)
        parts = [f"{setting} ({', else '.join(names)})" for setting, names in read_from.items()]
        verb = "is" if len(parts) == 1 else "are"
        super().__init__(
            "billing mode platform_managed needs the deployment's metering proxy, but its"
            f" {' and '.join(parts)} {verb} not set"
        )


class MissingByokCredentialError(ProvisionError):
    """``byok`` was decided but no credential that would serve the model is present.

    ``provider`` is the derived provider, or None when none was derived (then any registry
    provider's credential would do); ``satisfying_env`` are the env names, sorted, any one of
    which (non-blank) would satisfy it.
    """

    code = ErrorCode.MISSING_BYOK_CREDENTIAL

    def __init__(self, provider: str | None, satisfying_env: tuple[str, ...]) -> None:
        self.provider = provider
        self.satisfying_env = satisfying_env
        names = ", ".join(satisfying_env)
        if provider is None:
            message = (
                "billing mode byok needs the workspace's own LLM credential, but none of any"
                f" registry provider is set; set one of: {names}"
            )
        else:
            message = (
                f"billing mode byok needs a credential for provider {provider!r}, but none is"
                f" set; set one of: {names}"
            )
        super().__init__(message + " (blank values do not count)")


# --- The store ---------------------------------------------------------------------------------
# Messages never contain a secret value or a database password.


class StoreError(LlmBillingError):
    """Family: the store cannot serve the operation."""


class StoreUnavailableError(StoreError):
    """The database could not be reached or failed mid-operation."""

    code = ErrorCode.STORE_UNAVAILABLE


class DatabaseNotFoundError(StoreError):
    """A SQLite database file that does not exist was opened by a command that only uses one
    (only ``llmbilling db upgrade`` and ``llmbilling serve --demo`` create one). The message
    names the path: it is the operator's own setting, never shown to a tenant."""

    code = ErrorCode.DATABASE_NOT_FOUND

    def __init__(self, path: str) -> None:
        super().__init__(
            f"no database at {path!r}; `llmbilling db upgrade --database-url sqlite:///{path}`"
            " creates one"
        )
        self.path = path


class SchemaNotCurrentError(StoreError):
    """The database schema is missing or behind the code; ``llmbilling db upgrade`` fixes it."""

    code = ErrorCode.SCHEMA_NOT_CURRENT


class SecretsError(StoreError):
    """Family: the secret key ring, or a secret stored under it, cannot be used."""


class KeyRingError(SecretsError):
    """The secret key ring is missing or not valid (configuration, not data)."""

    code = ErrorCode.KEY_RING_INVALID


class UnknownKeyVersionError(SecretsError):
    """A stored secret was encrypted under a key version the ring does not hold."""

    code = ErrorCode.KEY_VERSION_UNKNOWN

    def __init__(self, version: int, known: tuple[int, ...]) -> None:
        self.version = version
        listed = ", ".join(f"v{v}" for v in known) or "none"
        super().__init__(f"key version v{version} is not in the key ring (have: {listed})")


class SecretDecryptionError(SecretsError):
    """A stored secret failed authentication: wrong key, tampered, or moved between rows."""

    code = ErrorCode.SECRET_UNDECRYPTABLE


class KeyRingMismatchError(SecretsError):
    """Secrets are stored, but the key ring holds none of the keys that sealed them (its file
    deleted or replaced, the wrong setting): refused before anything is sealed under it."""

    code = ErrorCode.KEY_RING_MISMATCH

    def __init__(
        self, source: str, rows: int, stored: tuple[str, ...], held: Mapping[int, str]
    ) -> None:
        self.source = source
        self.rows = rows
        self.stored = stored
        self.held = dict(held)
        expected = ", ".join(stored) or "unrecorded (rows sealed before fingerprints)"
        present = ", ".join(f"v{v} {fingerprint}" for v, fingerprint in sorted(held.items()))
        super().__init__(
            f"the key ring from {source} matches none of the {rows} stored secrets: they were"
            f" sealed under key fingerprints {expected}; the ring holds {present or 'no key'}."
            " Restore the key ring that sealed them (a new key would make them unreadable)"
        )


class KeyFingerprintMismatchError(SecretsError):
    """The ring holds another key under the version a secret was sealed with."""

    code = ErrorCode.KEY_FINGERPRINT_MISMATCH

    def __init__(self, version: int, stored: str, held: str) -> None:
        self.version = version
        super().__init__(
            f"the secret was sealed under key v{version} with fingerprint {stored}, but the"
            f" key ring's v{version} has fingerprint {held}: another key under the same version"
        )
