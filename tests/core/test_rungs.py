"""The rungs (spec §2): one unit per rung behind one interface, looked up by the policy."""

from __future__ import annotations

import pytest

from llmbilling.core.modes import RungName
from llmbilling.core.registry import CompiledRegistry
from llmbilling.core.rungs import RUNGS, Situation


def situation(registry: CompiledRegistry, **inputs: object) -> Situation:
    given: dict[str, object] = {
        "has_workspace_id": True,
        "override": None,
        "org_default_raw": None,
        "runtime": "codex",
        "model": "gpt-5.5",
        "auth_env": frozenset(),
        "proxy_configured": True,
        "registry": registry,
        "own_key_wins_over_org_default": False,
        **inputs,
    }
    return Situation(**given)  # type: ignore[arg-type]


def test_every_rung_name_has_exactly_one_rung() -> None:
    assert list(RUNGS) == list(RungName)
    assert all(rung.name is name for name, rung in RUNGS.items())


@pytest.mark.parametrize("name", list(RungName))
def test_a_rungs_verdict_is_its_own_trace_entry(name: RungName, builtin: CompiledRegistry) -> None:
    verdict = RUNGS[name].verdict(situation(builtin, override="byok", org_default_raw="byok"))
    assert verdict.entry.rung is name
    assert (verdict.mode is None) == (verdict.source is None)


def test_the_derivation_is_computed_once_whichever_rung_asks(builtin: CompiledRegistry) -> None:
    asked = situation(builtin, org_default_raw="byok", own_key_wins_over_org_default=True)
    RUNGS[RungName.ORG_DEFAULT].verdict(asked)
    first = asked.derived
    RUNGS[RungName.DERIVED_PROVIDER].verdict(asked)
    assert asked.derived is first
