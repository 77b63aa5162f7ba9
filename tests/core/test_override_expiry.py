"""An override may expire (item 9): the core is given "now"; past the expiry the override rung
is skipped, says when it expired, and the next rung decides. Memoized on whether it passed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from llmbilling.config.registry import built_in_registry
from llmbilling.core.decision import ResolutionInput
from llmbilling.core.modes import BillingMode, DecisionSource, RungName, RungStatus
from llmbilling.core.resolve import resolve_billing_mode

EXPIRY = datetime(2030, 1, 31, 12, 0, tzinfo=UTC)
REGISTRY = built_in_registry()


def _decide(now: datetime | None, expires_at: datetime | None = EXPIRY) -> ResolutionInput:
    return ResolutionInput(
        workspace_id="ws-1",
        override="disabled",
        org_default="byok",
        runtime="claude-code",
        model="claude-opus-4-7",
        override_expires_at=expires_at,
        now=now,
    )


@pytest.mark.parametrize(
    ("now", "expires_at", "source"),
    [
        (EXPIRY - timedelta(seconds=1), EXPIRY, DecisionSource.WORKSPACE_OVERRIDE),
        (EXPIRY, EXPIRY, DecisionSource.ORG_DEFAULT),
        (EXPIRY + timedelta(days=3), EXPIRY, DecisionSource.ORG_DEFAULT),
        (None, EXPIRY, DecisionSource.ORG_DEFAULT),
        (None, None, DecisionSource.WORKSPACE_OVERRIDE),
        (EXPIRY + timedelta(days=3), None, DecisionSource.WORKSPACE_OVERRIDE),
    ],
    ids=[
        "before-decides",
        "at-expired",
        "after-expired",
        "no-now-counts-as-expired",
        "no-expiry-decides",
        "no-expiry-never-expires",
    ],
)
def test_an_override_decides_only_before_its_expiry(
    now: datetime | None, expires_at: datetime | None, source: DecisionSource
) -> None:
    decision = resolve_billing_mode(_decide(now, expires_at), REGISTRY)
    assert decision.source is source


def test_an_expired_override_is_skipped_and_the_trace_says_when_it_expired() -> None:
    decision = resolve_billing_mode(_decide(EXPIRY + timedelta(hours=1)), REGISTRY)
    entry = decision.trace[0]
    assert (entry.rung, entry.status) == (RungName.WORKSPACE_OVERRIDE, RungStatus.SKIPPED)
    assert entry.why == "stored override 'disabled' expired at 2030-01-31T12:00:00+00:00: inherit"
    assert (decision.mode, decision.workspace_override) == (BillingMode.BYOK, None)


def test_decisions_at_different_nows_before_the_expiry_share_one_memoized_outcome() -> None:
    early = resolve_billing_mode(_decide(EXPIRY - timedelta(days=9)), REGISTRY)
    later = resolve_billing_mode(_decide(EXPIRY - timedelta(seconds=1)), REGISTRY)
    assert early.outcome is later.outcome
