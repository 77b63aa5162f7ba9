"""A decision as OpenFeature Remote Evaluation Protocol (OFREP 0.3.0) flag evaluations. Pure.

Three flags are read from one :class:`BillingDecision`, the very record the decision GET
returns (docs/OFREP.md has the tables):

- ``llm-billing-mode`` (string): the decided mode; variant = the mode.
- ``llm-billing-provider`` (string): the derived provider id when derivation succeeded;
  otherwise no value (OFREP's "code default": the caller's default applies), variant ``none``.
- ``llm-billing-would-provision`` (boolean): whether provisioning would succeed with the
  stored state; variant = the provisioning status (``ok`` or the error code it would raise).

Every evaluation carries the same flat metadata (:func:`decision_metadata`). Reasons come
from the decision's source (:data:`REASON_BY_SOURCE`); OFREP has no ``DEFAULT`` or ``ERROR``
reason, so the deployment default is ``STATIC`` and an unreadable store ``UNKNOWN`` (its error
code is in the metadata, beside a valid value: an error never replaces the decision).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

from llmbilling.core.decision import BillingDecision
from llmbilling.core.modes import DecisionSource, DerivationOutcome, RungStatus

MODE_FLAG = "llm-billing-mode"
PROVIDER_FLAG = "llm-billing-provider"
WOULD_PROVISION_FLAG = "llm-billing-would-provision"
FLAG_KEYS: tuple[str, ...] = (MODE_FLAG, PROVIDER_FLAG, WOULD_PROVISION_FLAG)
NO_PROVIDER_VARIANT = "none"


class Reason(StrEnum):
    """The OFREP ``reason`` values this service answers with (a subset of the spec's enum)."""

    STATIC = "STATIC"
    TARGETING_MATCH = "TARGETING_MATCH"
    UNKNOWN = "UNKNOWN"


class EvaluationErrorCode(StrEnum):
    """OFREP's ``errorCode`` vocabulary (``evaluationFailure`` and ``flagNotFound``)."""

    PARSE_ERROR = "PARSE_ERROR"
    TARGETING_KEY_MISSING = "TARGETING_KEY_MISSING"
    INVALID_CONTEXT = "INVALID_CONTEXT"
    GENERAL = "GENERAL"
    FLAG_NOT_FOUND = "FLAG_NOT_FOUND"


REASON_BY_SOURCE: Mapping[DecisionSource, Reason] = MappingProxyType(
    {
        # Stored or derived from this context's own inputs: a rule matched the target.
        DecisionSource.WORKSPACE_OVERRIDE: Reason.TARGETING_MATCH,
        DecisionSource.ORG_DEFAULT: Reason.TARGETING_MATCH,
        DecisionSource.DERIVED_PROVIDER: Reason.TARGETING_MATCH,
        # The deployment's default: the same answer for every context that reaches it.
        DecisionSource.DERIVED_DEFAULT: Reason.STATIC,
        # The override could not be read: why this value holds for the target is not known.
        DecisionSource.CONSTANT_FALLBACK: Reason.UNKNOWN,
    }
)

MetadataValue = str | bool


@dataclass(frozen=True, slots=True)
class FlagEvaluation:
    """One successful evaluation. ``value`` None means "no value: use the code default"."""

    key: str
    value: str | bool | None
    reason: Reason
    variant: str
    metadata: Mapping[str, MetadataValue]

    def to_dict(self) -> dict[str, object]:
        """The OFREP wire shape (``evaluationSuccess``)."""
        wire: dict[str, object] = {"key": self.key, "reason": self.reason.value}
        if self.value is not None:
            wire["value"] = self.value
        wire["variant"] = self.variant
        wire["metadata"] = dict(self.metadata)
        return wire


@dataclass(frozen=True, slots=True)
class EvaluationFailure:
    """A failed evaluation: OFREP's error code and details for people (no secret, no id the
    caller did not send)."""

    code: EvaluationErrorCode
    details: str

    def to_dict(self, key: str | None = None) -> dict[str, object]:
        """``evaluationFailure``/``flagNotFound`` with ``key``; ``bulkEvaluationFailure``
        without."""
        wire: dict[str, object] = {} if key is None else {"key": key}
        wire["errorCode"] = self.code.value
        wire["errorDetails"] = self.details
        return wire


def decision_metadata(decision: BillingDecision) -> dict[str, MetadataValue]:
    """The flat metadata every flag of ``decision`` carries (string and boolean values only;
    a field that is null in the record is left out)."""
    deciding_rung = next(
        (entry.rung.value for entry in decision.trace if entry.status is RungStatus.DECIDED), None
    )
    metadata: dict[str, MetadataValue] = {
        "source": decision.source.value,
        "derivationOutcome": decision.derivation.outcome.value,
        "provisioningStatus": decision.provisioning.status.value,
        "deploymentDefault": decision.deployment.default_mode.value,
        "proxyConfigured": decision.deployment.proxy_configured,
        "policyVersion": decision.versions.policy,
    }
    if deciding_rung is not None:
        metadata["rung"] = deciding_rung
    if decision.provider is not None:
        metadata["provider"] = decision.provider
    if decision.error is not None:
        metadata["errorCode"] = decision.error.code.value
    if decision.versions.registry is not None:
        metadata["registryVersion"] = decision.versions.registry
    return metadata


def unknown_flag(key: str) -> EvaluationFailure:
    """``FLAG_NOT_FOUND`` for a key that is none of :data:`FLAG_KEYS`."""
    return EvaluationFailure(
        EvaluationErrorCode.FLAG_NOT_FOUND,
        f"flag {key!r} is not served here; the flags are: {', '.join(FLAG_KEYS)}",
    )


def evaluate_flag(key: str, decision: BillingDecision) -> FlagEvaluation:
    """Flag ``key`` (one of :data:`FLAG_KEYS`, else ``ValueError``) of ``decision``."""
    metadata = MappingProxyType(decision_metadata(decision))
    if key == MODE_FLAG:
        mode = decision.mode.value
        return FlagEvaluation(key, mode, REASON_BY_SOURCE[decision.source], mode, metadata)
    if key == PROVIDER_FLAG:
        if decision.derivation.outcome is DerivationOutcome.OK and decision.provider is not None:
            provider = decision.provider
            return FlagEvaluation(key, provider, Reason.TARGETING_MATCH, provider, metadata)
        # Nothing was derived: the record's provider is then the raw model, not a provider.
        return FlagEvaluation(key, None, Reason.STATIC, NO_PROVIDER_VARIANT, metadata)
    if key == WOULD_PROVISION_FLAG:
        provisioning = decision.provisioning
        reason = Reason.UNKNOWN if decision.error is not None else Reason.TARGETING_MATCH
        return FlagEvaluation(key, provisioning.ok, reason, provisioning.status.value, metadata)
    raise ValueError(f"not a flag of this service: {key!r}")


def evaluate_all(decision: BillingDecision) -> tuple[FlagEvaluation, ...]:
    """Every flag of ``decision``, in :data:`FLAG_KEYS` order."""
    return tuple(evaluate_flag(key, decision) for key in FLAG_KEYS)


# RFC 3339 date-time (what the OFREP document's ``format: date-time`` means).
_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


def check_last_modified(text: str | None) -> EvaluationFailure | None:
    """Why ``flagConfigLastModified`` (the refetch metadata of an SSE event) is malformed, or
    None: absent, Unix seconds (an integer >= 0), or an RFC 3339 date-time."""
    if text is None or (text.isascii() and text.isdigit()):
        return None
    if _DATE_TIME.fullmatch(text):
        try:
            datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return None
    return EvaluationFailure(
        EvaluationErrorCode.PARSE_ERROR,
        "flagConfigLastModified: must be Unix seconds (an integer >= 0) or an RFC 3339 date-time",
    )


def bulk_body(evaluations: tuple[FlagEvaluation, ...], event_stream_uri: str | None) -> bytes:
    """``bulkEvaluationSuccess`` as compact JSON (the bytes the bulk ETag hashes): the flags,
    and the change stream at ``event_stream_uri`` (a path on this server) when one is given."""
    document: dict[str, object] = {"flags": [evaluation.to_dict() for evaluation in evaluations]}
    if event_stream_uri is not None:
        document["eventStreams"] = [{"type": "sse", "endpoint": {"requestUri": event_stream_uri}}]
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def bulk_etag(body: bytes) -> str:
    """The strong entity tag of a bulk answer: a digest of its body."""
    return f'"f{hashlib.sha256(body).hexdigest()[:16]}"'
