"""What the console's templates show, worked out in Python so the templates stay plain.

Nothing here reads the database: these functions turn decisions, provisions and audit entries
into labelled, ordered rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmbilling.core.decision import BillingDecision, TraceEntry
from llmbilling.core.modes import BillingMode, RungName, RungStatus, normalize_mode_text
from llmbilling.service.console import LastProvision

RUNG_LABELS: Mapping[RungName, str] = {
    RungName.WORKSPACE_OVERRIDE: "Workspace override",
    RungName.ORG_DEFAULT: "Org default",
    RungName.DERIVED_PROVIDER: "Derived provider",
    RungName.DEPLOYMENT_DEFAULT: "Deployment default",
}
# The question each rung answers, so the ladder reads as an explanation, not a log.
RUNG_QUESTIONS: Mapping[RungName, str] = {
    RungName.WORKSPACE_OVERRIDE: "Has someone set this workspace's mode explicitly?",
    RungName.ORG_DEFAULT: "Does the organization set a default mode?",
    RungName.DERIVED_PROVIDER: "Does the model tell us who serves it?",
    RungName.DEPLOYMENT_DEFAULT: "Nothing else decided: what does this deployment fall back to?",
}
SOURCE_LABELS: Mapping[str, str] = {
    "workspace_override": "workspace override",
    "org_default": "org default",
    "derived_provider": "derived provider",
    "derived_default": "derived default (fail closed)",
    "constant_fallback": "constant fallback (read failed)",
}


@dataclass(frozen=True, slots=True)
class LadderRung:
    position: int
    rung: str
    label: str
    question: str
    status: str
    why: str
    decides: bool


def ladder(decision: BillingDecision) -> list[LadderRung]:
    """The trace as rungs in chain order; the one that decided is marked."""
    return [_rung(position, entry) for position, entry in enumerate(decision.trace, start=1)]


def _rung(position: int, entry: TraceEntry) -> LadderRung:
    return LadderRung(
        position=position,
        rung=entry.rung.value,
        label=RUNG_LABELS.get(entry.rung, entry.rung.value),
        question=RUNG_QUESTIONS.get(entry.rung, ""),
        status=entry.status.value,
        why=entry.why,
        decides=entry.status is RungStatus.DECIDED,
    )


@dataclass(frozen=True, slots=True)
class FlipMarker:
    """Why a workspace's billing changed, or will change on its next provision."""

    label: str
    detail: str


def flip_marker(decision: BillingDecision, last: LastProvision | None) -> FlipMarker | None:
    """A drift (the current decision differs from what the running container was provisioned
    with) beats a past flip: it is the one that changes who pays next."""
    if last is None:
        return None
    if last.mode is not decision.mode:
        return FlipMarker(
            label=f"{last.mode.value} → {decision.mode.value}",
            detail=(
                f"provisioned as {last.mode.value}; now decides {decision.mode.value}:"
                " the next provision flips it"
            ),
        )
    if last.flipped_from is not None:
        return FlipMarker(
            label=f"flipped from {last.flipped_from.value}",
            detail=(
                f"the last provision flipped it from {last.flipped_from.value} to {last.mode.value}"
            ),
        )
    return None


def org_default_words(raw: str | None, deployment_default: str | None) -> str:
    """The org default as an operator needs to read it, garbled values included."""
    if raw is None:
        if deployment_default is not None:
            return (
                f"none stored; the deployment's MOLECULE_LLM_BILLING_MODE"
                f" {deployment_default!r} applies"
            )
        return "none: workspaces inherit from their model"
    normalized = normalize_mode_text(raw)
    if normalized in {mode.value for mode in BillingMode}:
        if raw == normalized:
            return normalized
        return f"{normalized} (stored as {raw!r})"
    if not normalized:
        return "empty: ignored"
    return f"{raw!r} is not a mode: ignored"


def changes_words(values: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """An audit before/after object as (field, value) pairs; audit entries hold no secrets."""
    if not values:
        return []
    return [(key, _value_words(value)) for key, value in sorted(values.items())]


def _value_words(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)
