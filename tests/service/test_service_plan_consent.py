"""What an applier says with a plan's apply (SQLite and PostgreSQL): its reason reaches the
write's audit entry and the ``plan.applied`` entry, as a direct write's does, and under
LLMBILLING_GUARD_DANGEROUS_WRITES a dangerous plan applies only when every danger class of its
preview is acknowledged, in the service, so the API, the CLI and the console share the rule."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from tests.store.db_fixtures import stored_workspace

from llmbilling.core.whatif import DangerClass
from llmbilling.errors import DangerNotAcknowledgedError, InvalidInputError
from llmbilling.service import admin, audit, plans
from llmbilling.service.audit import AuditContext
from llmbilling.service.context import ChangeRules, ServiceContext
from llmbilling.service.plans import Plan
from llmbilling.store.audit import AuditEntry

KIMI = "kimi-for-coding"
CAROL = AuditContext(actor="token:carol", request_id="consent-apply")


def _guarded(context: ServiceContext) -> ServiceContext:
    context.change_rules = dataclasses.replace(ChangeRules(), guard_dangerous_writes=True)
    return context


def _entries_of_the_apply(context: ServiceContext, plan: Plan) -> dict[str, AuditEntry]:
    found = audit.list_entries(
        context, org_id=plan.scope.org_id, workspace_id=plan.scope.workspace_id, limit=20
    )
    return {entry.action: entry for entry in found if entry.request_id == CAROL.request_id}


def _override_plan(context: ServiceContext) -> Plan:
    _, workspace_id = stored_workspace(context, model=KIMI)
    return plans.propose_plan(context, plans.override_change(workspace_id, "disabled"))


def _override_clear_plan(context: ServiceContext) -> Plan:
    _, workspace_id = stored_workspace(context, override="byok", model=KIMI)
    return plans.propose_plan(context, plans.override_change(workspace_id, None))


def _org_default_plan(context: ServiceContext) -> Plan:
    org_id, _ = stored_workspace(context, model=KIMI)
    return plans.propose_plan(context, plans.org_default_change(org_id, "byok"))


def _secret_delete_plan(context: ServiceContext) -> Plan:
    _, workspace_id = stored_workspace(context, workspace_secrets={"EXTRA": "v"})
    change = plans.secret_change("workspace", workspace_id, "EXTRA", present=False)
    return plans.propose_plan(context, change)


def _secret_set_plan(context: ServiceContext) -> Plan:
    org_id, _ = stored_workspace(context)
    return plans.propose_plan(context, plans.secret_change("org", org_id, "EXTRA", present=True))


WRITES: list[tuple[Callable[[ServiceContext], Plan], str]] = [
    (_override_plan, "workspace.override_set"),
    (_override_clear_plan, "workspace.override_cleared"),
    (_org_default_plan, "org.billing_mode_default_set"),
    (_secret_set_plan, "secret.set"),
    (_secret_delete_plan, "secret.deleted"),
]


# --- the reason --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make_plan", "write_action"), WRITES, ids=[action for _, action in WRITES]
)
def test_the_reason_of_an_apply_is_kept_with_the_write_and_the_plan_applied_entry(
    context: ServiceContext, make_plan: Callable[[ServiceContext], Plan], write_action: str
) -> None:
    plan = make_plan(context)

    plans.apply_plan(context, plan.id, secret_value="v2", reason="ticket 15", audit_context=CAROL)

    entries = _entries_of_the_apply(context, plan)
    assert entries[write_action].reason == "ticket 15"
    assert entries["plan.applied"].reason == "ticket 15"


def test_an_apply_without_a_reason_keeps_none(context: ServiceContext) -> None:
    plan = _override_plan(context)

    plans.apply_plan(context, plan.id, audit_context=CAROL)

    entries = _entries_of_the_apply(context, plan)
    assert entries["workspace.override_set"].reason is None
    assert "reason" not in (entries["plan.applied"].after or {})


@pytest.mark.parametrize("reason", ["two\nlines", "x" * (admin.MAX_REASON_LENGTH + 1)])
def test_a_reason_a_direct_write_would_refuse_refuses_the_apply_before_anything(
    context: ServiceContext, reason: str
) -> None:
    plan = _override_plan(context)

    with pytest.raises(InvalidInputError) as raised:
        plans.apply_plan(context, plan.id, reason=reason)

    assert raised.value.field == "reason"
    assert plans.get_plan(context, plan.id).status == "proposed"


# --- the acknowledgement -----------------------------------------------------------------------


def test_a_guarded_dangerous_plan_is_refused_naming_its_classes_and_counts(
    context: ServiceContext,
) -> None:
    plan = _override_plan(_guarded(context))

    with pytest.raises(DangerNotAcknowledgedError) as raised:
        plans.apply_plan(context, plan.id)

    assert raised.value.details["dangers"] == {"to_disabled": 1}
    assert raised.value.details["unacknowledged"] == ["to_disabled"]
    assert plans.get_plan(context, plan.id).status == "proposed"


def test_acknowledging_another_class_is_not_acknowledging_the_plans(
    context: ServiceContext,
) -> None:
    plan = _override_plan(_guarded(context))

    with pytest.raises(DangerNotAcknowledgedError):
        plans.apply_plan(context, plan.id, acknowledged=frozenset({DangerClass.BYOK_TO_PLATFORM}))


def test_a_guarded_dangerous_plan_applies_once_every_class_is_acknowledged(
    context: ServiceContext,
) -> None:
    plan = _override_plan(_guarded(context))

    applied = plans.apply_plan(context, plan.id, acknowledged=frozenset({DangerClass.TO_DISABLED}))

    assert applied.status == "applied"


def test_a_guarded_harmless_plan_needs_no_acknowledgement(context: ServiceContext) -> None:
    plan = _secret_delete_plan(_guarded(context))

    assert plans.apply_plan(context, plan.id).status == "applied"


def test_without_the_guard_a_dangerous_plan_needs_no_acknowledgement(
    context: ServiceContext,
) -> None:
    plan = _override_plan(context)

    assert plans.apply_plan(context, plan.id).status == "applied"


def test_a_guarded_dangerous_deployment_plan_is_refused_unacknowledged_too(
    context: ServiceContext,
) -> None:
    org_id, _ = stored_workspace(_guarded(context), org_default="platform_managed", model=KIMI)
    change = plans.deployment_change(proxy_configured=False)
    plan = plans.propose_plan(context, change, org_id=org_id)
    assert plan.preview["dangers"]["to_platform_without_proxy"] == 1

    with pytest.raises(DangerNotAcknowledgedError):
        plans.apply_plan(context, plan.id)
