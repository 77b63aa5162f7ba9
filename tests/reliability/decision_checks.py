"""What every decision must satisfy, checked on one decision: the spec §2 invariants and the
record's coherence (``assert_section_2_invariants``), and a watch that sees any I/O a decision
does (``IO_WATCH``, a ``sys.addaudithook`` hook). Used by the fail-closed tests, pure and under
store faults.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

from tests.strategies import DECIDING_RUNG, normalized_org_default

from llmbilling.core.decision import BillingDecision, OverrideReadFailure, ResolutionInput
from llmbilling.core.modes import MODE_VALUES
from llmbilling.core.policy import CompiledPolicy
from llmbilling.core.registry import CompiledRegistry

SOURCES = {
    "workspace_override",
    "org_default",
    "derived_provider",
    "derived_default",
    "constant_fallback",
}
FAIL_CLOSED_SOURCES = {"derived_default", "constant_fallback"}

# --- no I/O inside a decision --------------------------------------------------------------------

_IO_EVENTS = (
    "open",
    "os.",
    "socket.",
    "subprocess.",
    "sqlite3.",
    "shutil.",
    "urllib.",
    "http.",
    "glob.",
    "ctypes.",
    "import",
    "tempfile.",
)


class IoWatch:
    """Records the I/O audit events (PEP 578) raised on one thread while watching."""

    def __init__(self) -> None:
        self.thread: int | None = None
        self.seen: list[str] = []

    def __call__(self, event: str, _args: tuple[Any, ...]) -> None:
        # Called for every audit event of the process for the rest of the session: the common
        # case (not watching) returns at once.
        if self.thread is None:
            return
        if self.thread == threading.get_ident() and event.startswith(_IO_EVENTS):
            self.seen.append(event)

    def watch(self, call: Callable[[], BillingDecision]) -> BillingDecision:
        self.seen.clear()
        self.thread = threading.get_ident()
        try:
            return call()
        finally:
            self.thread = None


IO_WATCH = IoWatch()
sys.addaudithook(IO_WATCH)  # hooks cannot be removed; it records nothing unless watching


# --- the invariants -------------------------------------------------------------------------------


def assert_section_2_invariants(
    inputs: ResolutionInput,
    registry: CompiledRegistry | None,
    policy: CompiledPolicy,
    decision: BillingDecision,
) -> None:
    """Every §2 invariant (and the record's coherence) for one decision."""
    record = decision.to_dict()
    mode, source, error = record["mode"], record["source"], record["error"]
    default_mode = "platform_managed" if inputs.proxy_configured else "byok"
    read_failed = bool(inputs.workspace_id) and isinstance(inputs.override, OverrideReadFailure)

    # The decided mode is always one of the three modes, whatever the input.
    assert mode in MODE_VALUES
    assert source in SOURCES

    # A failed read decides the deployment default, under every policy, with the error beside.
    if read_failed:
        assert (mode, source) == (default_mode, "constant_fallback"), record
        assert error is not None
        assert error["code"] == "OVERRIDE_READ_FAILED", record
    else:
        assert source != "constant_fallback", record

    # byok only from a recognized override, a recognized org default, a derived vendor
    # provider, or the self-host deployment default. Never from an error on SaaS.
    if mode == "byok":
        by = {
            "workspace_override": record["workspace_override"] == "byok",
            "org_default": record["org_default"]["recognized"] == "byok",
            "derived_provider": registry is not None
            and record["provider"] in registry.providers
            and record["provider"] != registry.platform_provider,
            "derived_default": not inputs.proxy_configured,
            "constant_fallback": not inputs.proxy_configured,
        }
        assert by[source], record
    if inputs.proxy_configured and source in FAIL_CLOSED_SOURCES:
        assert mode == "platform_managed", record
    if mode == "disabled":
        assert source in {"workspace_override", "org_default"}, record

    # An error never prevents a decision: it travels beside a valid one, and it is one of the
    # two operational faults (the read, the registry), nothing else.
    if error is not None:
        assert error["code"] in {"OVERRIDE_READ_FAILED", "REGISTRY_UNAVAILABLE"}, record
        assert error["message"], record
        if error["code"] == "REGISTRY_UNAVAILABLE":
            assert registry is None, record

    # What the record says was recognized is exactly what the spec recognizes.
    exact = inputs.override if isinstance(inputs.override, str) else None
    if source == "workspace_override":
        assert inputs.workspace_id, record
        assert record["workspace_override"] == exact == mode, record
    assert record["workspace_override"] in (None, exact), record
    assert record["org_default"] == {
        "raw": inputs.org_default,
        "recognized": normalized_org_default(inputs.org_default),
    }, record
    if source == "org_default":
        assert mode == normalized_org_default(inputs.org_default), record
    if source == "derived_provider":
        assert registry is not None
        platform = record["provider"] == registry.platform_provider
        assert mode == ("platform_managed" if platform else "byok"), record
    assert record["deployment"] == {
        "proxy_configured": inputs.proxy_configured,
        "default_mode": default_mode,
    }
    assert record["workspace_id"] == inputs.workspace_id

    # The trace: one entry per rung of the policy, in its order; exactly one decided, on the
    # rung the source names; nothing after it consulted.
    trace = record["trace"]
    assert [entry["rung"] for entry in trace] == [rung.value for rung in policy.rungs]
    decided = [i for i, entry in enumerate(trace) if entry["status"] == "decided"]
    assert len(decided) == 1, record
    assert trace[decided[0]]["rung"] == DECIDING_RUNG[source], record
    assert all(entry["status"] == "skipped" for entry in trace[decided[0] + 1 :]), record
    assert all(entry["why"] for entry in trace), record
