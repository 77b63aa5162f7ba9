"""The inputs of a decision and the decision record (spec §2). All immutable."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from llmbilling.core.modes import (
    BillingMode,
    DecisionSource,
    DerivationOutcome,
    RungName,
    RungStatus,
)
from llmbilling.errors import ErrorCode


@dataclass(frozen=True, slots=True)
class OverrideReadFailure:
    """Reading the workspace's stored override failed; ``message`` says why (no secrets)."""

    message: str


@dataclass(frozen=True, slots=True)
class ResolutionInput:
    """Everything a decision depends on, already read from wherever it lives.

    ``override`` is the stored column as read (any text: garbled values are tolerated), None
    when NULL, or an :class:`OverrideReadFailure`. ``org_default`` is the raw configured text.
    ``auth_env`` holds credential env-var *names* only, never values.
    ``override_expires_at`` is the override's stored expiry (aware), if any; ``now`` is the
    moment the decision is made at, supplied by the caller (the core reads no clock). An
    override with an expiry decides only while ``now`` is given and before it: without a
    ``now`` its validity cannot be shown, so it is treated as expired.
    """

    workspace_id: str | None = None
    override: str | OverrideReadFailure | None = None
    org_default: str | None = None
    runtime: str | None = None
    model: str | None = None
    auth_env: frozenset[str] = frozenset()
    proxy_configured: bool = True
    override_expires_at: datetime | None = None
    now: datetime | None = None


@dataclass(frozen=True, slots=True)
class OrgDefault:
    raw: str | None
    recognized: BillingMode | None


@dataclass(frozen=True, slots=True)
class Derivation:
    outcome: DerivationOutcome
    detail: str


@dataclass(frozen=True, slots=True)
class TraceEntry:
    rung: RungName
    status: RungStatus
    why: str


@dataclass(frozen=True, slots=True)
class DecisionError:
    code: ErrorCode
    message: str


@dataclass(frozen=True, slots=True)
class Deployment:
    proxy_configured: bool
    default_mode: BillingMode


@dataclass(frozen=True, slots=True)
class Versions:
    """Content hashes of the policy and registry a decision was made under."""

    policy: str
    registry: str | None


class ProvisioningStatus(StrEnum):
    """What provisioning would do with a decision's stored state: succeed, or fail with the
    code of the error it would raise (``unknown`` when the state could not be read)."""

    OK = "ok"
    MISSING_MODEL = ErrorCode.MISSING_MODEL.value
    MISSING_PLATFORM_PROXY = ErrorCode.MISSING_PLATFORM_PROXY.value
    MISSING_BYOK_CREDENTIAL = ErrorCode.MISSING_BYOK_CREDENTIAL.value
    REGISTRY_UNAVAILABLE = ErrorCode.REGISTRY_UNAVAILABLE.value
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Provisioning:
    """The provisioning verdict beside a decision (see
    :func:`llmbilling.core.provisioning.judge_provisioning`). For ``MISSING_BYOK_CREDENTIAL``,
    ``provider`` is the derived vendor (None: any vendor) and ``satisfied_by`` the credential
    names any one of which would satisfy it (sorted); both are empty otherwise."""

    status: ProvisioningStatus
    provider: str | None = None
    satisfied_by: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status is ProvisioningStatus.OK


@dataclass(frozen=True, slots=True)
class ChainOutcome:
    """What the precedence chain concluded: every field of the record but the workspace id.

    Workspaces with the same inputs share one outcome, which is what makes resolution cheap.
    """

    mode: BillingMode
    source: DecisionSource
    workspace_override: BillingMode | None
    org_default: OrgDefault
    provider: str | None
    derivation: Derivation
    trace: tuple[TraceEntry, ...]
    error: DecisionError | None
    deployment: Deployment
    versions: Versions
    provisioning: Provisioning


@dataclass(frozen=True, slots=True)
class BillingDecision:
    """The decision record. ``error`` travels beside a valid ``mode``; it never replaces it."""

    workspace_id: str | None
    outcome: ChainOutcome

    @property
    def mode(self) -> BillingMode:
        return self.outcome.mode

    @property
    def source(self) -> DecisionSource:
        return self.outcome.source

    @property
    def workspace_override(self) -> BillingMode | None:
        return self.outcome.workspace_override

    @property
    def org_default(self) -> OrgDefault:
        return self.outcome.org_default

    @property
    def provider(self) -> str | None:
        return self.outcome.provider

    @property
    def derivation(self) -> Derivation:
        return self.outcome.derivation

    @property
    def trace(self) -> tuple[TraceEntry, ...]:
        return self.outcome.trace

    @property
    def error(self) -> DecisionError | None:
        return self.outcome.error

    @property
    def deployment(self) -> Deployment:
        return self.outcome.deployment

    @property
    def versions(self) -> Versions:
        return self.outcome.versions

    @property
    def provisioning(self) -> Provisioning:
        return self.outcome.provisioning

    def to_json(self) -> bytes:
        """:meth:`to_dict` as compact UTF-8 JSON: the record's one serialization (the API's
        body, and what a decision version digests)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":")).encode()

    def to_dict(self) -> dict[str, Any]:
        """The wire shape: plain JSON types, field names and values as in the contract."""
        outcome = self.outcome
        wire = _WIRE
        return {
            "workspace_id": self.workspace_id,
            "mode": wire[outcome.mode],
            "source": wire[outcome.source],
            "workspace_override": wire[outcome.workspace_override],
            "org_default": {
                "raw": outcome.org_default.raw,
                "recognized": wire[outcome.org_default.recognized],
            },
            "provider": outcome.provider,
            "derivation": {
                "outcome": wire[outcome.derivation.outcome],
                "detail": outcome.derivation.detail,
            },
            "trace": [
                {"rung": wire[entry.rung], "status": wire[entry.status], "why": entry.why}
                for entry in outcome.trace
            ],
            "error": (
                None
                if outcome.error is None
                else {"code": outcome.error.code.value, "message": outcome.error.message}
            ),
            "deployment": {
                "proxy_configured": outcome.deployment.proxy_configured,
                "default_mode": wire[outcome.deployment.default_mode],
            },
            "versions": {"policy": outcome.versions.policy, "registry": outcome.versions.registry},
            "provisioning": {
                "status": wire[outcome.provisioning.status],
                "provider": outcome.provisioning.provider,
                "satisfied_by": list(outcome.provisioning.satisfied_by),
            },
        }


# Every member's wire value (and None for None), looked up rather than read through an enum
# member's ``value`` property, which costs several times a dict probe, ten or more per record.
_WIRE: dict[StrEnum | None, str | None] = {
    None: None,
    **{
        member: member.value
        for vocabulary in (
            BillingMode,
            DecisionSource,
            DerivationOutcome,
            RungName,
            RungStatus,
            ProvisioningStatus,
        )
        for member in vocabulary
    },
}
