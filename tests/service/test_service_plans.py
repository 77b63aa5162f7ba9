"""Change previews and plans over real stored state (SQLite and PostgreSQL): a preview names
the blast radius, a plan applies exactly what was previewed or refuses naming what moved, the
guard refuses unacknowledged dangerous writes, and dangerous plans can need a second token."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from tests.store.db_fixtures import SELF_HOST, ContextFactory, stored_workspace

from llmbilling import compile_policy
from llmbilling.core.whatif import DangerClass
from llmbilling.errors import (
    DangerNotAcknowledgedError,
    InvalidInputError,
    PlanAlreadyAppliedError,
    PlanExpiredError,
    PlanNeedsApprovalError,
    PlanNeedsSecretValueError,
    PlanNotDeployedError,
    PlanNotFoundError,
    PlanSelfApprovalError,
    PlanStaleError,
    WorkspaceNotFoundError,
)
from llmbilling.service import admin, audit, plans, secrets
from llmbilling.service.audit import AuditContext
from llmbilling.service.context import ChangeRules, ServiceContext
from llmbilling.service.resolve import resolve_workspace
from llmbilling.store.tables import change_plans

ALICE = AuditContext(actor="token:alice")
BOB = AuditContext(actor="token:bob")
KIMI = "kimi-for-coding"
P2B = compile_policy(
    {"rungs": ["workspace_override", "derived_provider", "deployment_default"]}, "p2b.yaml"
)


def _org_with_workspaces(context: ServiceContext, size: int, default: str) -> uuid.UUID:
    org = admin.create_org(context, "plan-org")
    admin.set_org_default(context, org.id, default)
    for _ in range(size):
        admin.create_workspace(context, org.id, runtime="claude-code", model=KIMI)
    return org.id


def _with_rules(context: ServiceContext, **rules: object) -> ServiceContext:
    context.change_rules = dataclasses.replace(ChangeRules(), **rules)  # type: ignore[arg-type]
    return context


# --- previews ----------------------------------------------------------------------------------


def test_an_org_default_preview_counts_every_workspace_of_the_org(
    context: ServiceContext,
) -> None:
    org_id = _org_with_workspaces(context, 5, "platform_managed")

    preview = plans.preview_change(context, plans.org_default_change(org_id, "disabled"))

    assert preview.scope.kind == "org"
    assert (preview.total, preview.changed) == (5, 5)
    assert preview.mode_transitions == {("platform_managed", "disabled"): 5}
    assert preview.danger_counts == {"to_disabled": 5}
    assert len(preview.danger_samples[DangerClass.TO_DISABLED]) == 5


def test_an_override_preview_is_the_workspace_alone_with_before_and_after(
    context: ServiceContext,
) -> None:
    org_id = _org_with_workspaces(context, 3, "platform_managed")
    target = admin.create_workspace(context, org_id, runtime="claude-code", model=KIMI)

    preview = plans.preview_change(context, plans.override_change(target.id, "byok"))

    assert preview.scope.kind == "workspace"
    assert preview.total == 1
    (impact,) = preview.impacts
    assert impact.workspace_id == target.id
    assert impact.before.to_dict() == {
        "mode": "platform_managed",
        "source": "org_default",
        "provisioning": "ok",
    }
    assert impact.after.mode == "byok"
    assert impact.after.provisioning == "MISSING_BYOK_CREDENTIAL"
    assert impact.dangers == (DangerClass.TO_BYOK_WITHOUT_CREDENTIAL,)


def test_deleting_the_credential_of_a_byok_workspace_is_dangerous(
    context: ServiceContext,
) -> None:
    _, workspace_id = stored_workspace(
        context, override="byok", model=KIMI, workspace_secrets={"KIMI_API_KEY": "sk-1"}
    )

    change = plans.secret_change("workspace", workspace_id, "KIMI_API_KEY", present=False)
    preview = plans.preview_change(context, change)

    assert preview.provisioning_transitions == {("ok", "MISSING_BYOK_CREDENTIAL"): 1}
    assert preview.danger_counts == {"to_byok_without_credential": 1}


def test_an_org_secret_preview_covers_the_org_and_a_workspace_key_keeps_it_present(
    context: ServiceContext,
) -> None:
    org_id = _org_with_workspaces(context, 2, "byok")
    keyed = admin.create_workspace(context, org_id, runtime="claude-code", model=KIMI)
    secrets.set_secret(context, "workspace", keyed.id, "KIMI_API_KEY", "sk-own")
    secrets.set_secret(context, "org", org_id, "KIMI_API_KEY", "sk-org")

    preview = plans.preview_change(
        context, plans.secret_change("org", org_id, "KIMI_API_KEY", present=False)
    )

    assert preview.total == 3
    assert preview.danger_counts == {"to_byok_without_credential": 2}
    assert keyed.id not in {impact.workspace_id for impact in preview.impacts}


def test_removing_the_proxy_flags_platform_workspaces(context: ServiceContext) -> None:
    org_id = _org_with_workspaces(context, 4, "platform_managed")

    preview = plans.preview_change(
        context, plans.deployment_change(proxy_configured=False), org_id=org_id
    )

    assert preview.scope.kind == "org"
    assert preview.danger_counts == {"to_platform_without_proxy": 4}
    assert preview.provisioning_transitions == {("ok", "MISSING_PLATFORM_PROXY"): 4}


def test_a_policy_swap_preview_agrees_with_the_fleet_whatif(context: ServiceContext) -> None:
    org_id = _org_with_workspaces(context, 3, "platform_managed")

    change = plans.configuration_change(context, P2B, None)
    preview = plans.preview_change(context, change, org_id=org_id)

    assert preview.mode_transitions == {("platform_managed", "byok"): 3}
    assert preview.danger_counts == {"to_byok_without_credential": 3}


def test_impacts_are_bounded_but_counts_are_complete(context: ServiceContext) -> None:
    org_id = _org_with_workspaces(context, 6, "platform_managed")

    preview = plans.preview_change(
        context, plans.org_default_change(org_id, "disabled"), impact_limit=2
    )

    assert (preview.total, len(preview.impacts), preview.impacts_complete) == (6, 2, False)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: plans.override_change("not-a-uuid", "byok"), "workspace_id"),
        (lambda: plans.override_change(uuid.uuid4(), "BYOK"), "mode"),
        (lambda: plans.override_change(uuid.uuid4(), None, "2099-01-01T00:00:00Z"), "expires_at"),
        (lambda: plans.org_default_change(uuid.uuid4(), "byokk"), "mode"),
        (lambda: plans.secret_change("team", uuid.uuid4(), "X", present=True), "scope"),
        (lambda: plans.secret_change("org", uuid.uuid4(), "MODEL", present=True), "name"),
        (lambda: plans.parse_acknowledged("to_disabled, nope"), "acknowledge_dangers"),
    ],
)
def test_a_malformed_change_names_its_field(build: object, field: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        build()  # type: ignore[operator]
    assert raised.value.field == field


def test_a_preview_of_a_missing_workspace_is_not_found(context: ServiceContext) -> None:
    with pytest.raises(WorkspaceNotFoundError):
        plans.preview_change(context, plans.override_change(uuid.uuid4(), "byok"))


# --- plans -------------------------------------------------------------------------------------


def test_applying_a_plan_commits_exactly_the_previewed_after(context: ServiceContext) -> None:
    org_id = _org_with_workspaces(context, 3, "platform_managed")
    plan = plans.propose_plan(
        context, plans.org_default_change(org_id, "byok"), audit_context=ALICE
    )
    assert plan.status == "proposed"

    applied = plans.apply_plan(context, plan.id, audit_context=BOB)

    assert (applied.status, applied.applied_by, applied.proposed_by) == (
        "applied",
        BOB.actor,
        ALICE.actor,
    )
    for impact in plan.preview["impacts"]:
        decision = resolve_workspace(context, impact["workspace_id"])
        assert decision.mode.value == impact["after"]["mode"]
        assert decision.source.value == impact["after"]["source"]
        assert decision.provisioning.status.value == impact["after"]["provisioning"]


@pytest.mark.parametrize(
    ("interfere", "family"),
    [
        (lambda c, org, ws: admin.set_org_default(c, org, "disabled"), "orgs"),
        (lambda c, org, ws: admin.set_override(c, ws, "disabled"), "workspaces"),
        (lambda c, org, ws: secrets.set_secret(c, "org", org, "KIMI_API_KEY", "k"), "secrets"),
        (
            lambda c, org, ws: admin.create_workspace(c, org, runtime="claude-code", model=KIMI),
            "workspaces",
        ),
    ],
    ids=["org-default", "override", "secret", "new-workspace"],
)
def test_a_plan_whose_inputs_moved_is_refused_naming_the_family(
    context: ServiceContext, interfere: object, family: str
) -> None:
    org_id, workspace_id = stored_workspace(context, org_default="platform_managed", model=KIMI)
    plan = plans.propose_plan(context, plans.org_default_change(org_id, "byok"))
    interfere(context, org_id, workspace_id)  # type: ignore[operator]

    with pytest.raises(PlanStaleError) as raised:
        plans.apply_plan(context, plan.id)

    assert raised.value.details["moved"] == [family]
    assert plans.get_plan(context, plan.id).status == "proposed"


def test_a_plan_is_applied_once(context: ServiceContext) -> None:
    _, workspace_id = stored_workspace(context)
    plan = plans.propose_plan(context, plans.override_change(workspace_id, "disabled"))
    plans.apply_plan(context, plan.id)

    with pytest.raises(PlanAlreadyAppliedError):
        plans.apply_plan(context, plan.id)


def test_an_expired_plan_cannot_be_applied_or_approved(context: ServiceContext) -> None:
    _, workspace_id = stored_workspace(context)
    plan = plans.propose_plan(context, plans.override_change(workspace_id, "disabled"))
    with context.store.engine.begin() as connection:
        connection.execute(
            update(change_plans)
            .where(change_plans.c.id == plan.id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )

    assert plans.get_plan(context, plan.id).status == "expired"
    with pytest.raises(PlanExpiredError):
        plans.apply_plan(context, plan.id)
    with pytest.raises(PlanExpiredError):
        plans.approve_plan(context, plan.id, audit_context=BOB)


def test_a_plan_lives_as_long_as_the_deployment_says(context: ServiceContext) -> None:
    _, workspace_id = stored_workspace(context)
    _with_rules(context, plan_ttl_seconds=120)

    plan = plans.propose_plan(context, plans.override_change(workspace_id, "disabled"))

    assert plan.expires_at - plan.created_at == timedelta(seconds=120)


def test_an_unknown_plan_is_not_found(context: ServiceContext) -> None:
    with pytest.raises(PlanNotFoundError):
        plans.get_plan(context, uuid.uuid4())


def test_a_secret_plan_takes_its_value_at_apply_and_never_stores_it(
    context: ServiceContext,
) -> None:
    _, workspace_id = stored_workspace(context, override="byok", model=KIMI)
    change = plans.secret_change("workspace", workspace_id, "KIMI_API_KEY", present=True)
    plan = plans.propose_plan(context, change)
    with pytest.raises(PlanNeedsSecretValueError) as raised:
        plans.apply_plan(context, plan.id)
    assert raised.value.details["field"] == "value"

    plans.apply_plan(context, plan.id, secret_value="sk-SENTINEL-VALUE")

    assert "sk-SENTINEL-VALUE" not in repr(plans.get_plan(context, plan.id).to_dict())
    assert resolve_workspace(context, workspace_id).provisioning.status.value == "ok"


def test_a_secret_delete_plan_removes_the_secret(context: ServiceContext) -> None:
    _, workspace_id = stored_workspace(context, workspace_secrets={"EXTRA": "v"})
    plan = plans.propose_plan(
        context, plans.secret_change("workspace", workspace_id, "EXTRA", present=False)
    )

    plans.apply_plan(context, plan.id)

    assert [s.name for s in secrets.list_secrets(context, "workspace", workspace_id)] == []


# --- deployment-level plans: apply verifies the deploy ----------------------------------------


def test_a_deployment_plan_verifies_only_once_deployed(
    context: ServiceContext, make_context: ContextFactory
) -> None:
    org_id = _org_with_workspaces(context, 2, "byok")
    plan = plans.propose_plan(
        context, plans.deployment_change(proxy_configured=False), org_id=org_id
    )

    with pytest.raises(PlanNotDeployedError) as raised:
        plans.apply_plan(context, plan.id)
    assert raised.value.details["waiting"] == ["deployment"]

    deployed = make_context(proxy=SELF_HOST)
    verified = plans.apply_plan(deployed, plan.id, audit_context=BOB)
    assert verified.status == "applied"
    actions = [entry.action for entry in audit.list_entries(context, org_id=org_id, limit=5)]
    assert actions[0] == "plan.verified"


# --- the guard ---------------------------------------------------------------------------------


def test_the_guard_refuses_an_unacknowledged_dangerous_write(context: ServiceContext) -> None:
    _with_rules(context, guard_dangerous_writes=True)
    _, workspace_id = stored_workspace(context)
    change = plans.override_change(workspace_id, "disabled")

    with pytest.raises(DangerNotAcknowledgedError) as raised:
        admin.set_override(
            context, workspace_id, "disabled", under_lock=plans.write_guard(context, change)
        )

    assert raised.value.details["dangers"] == {"to_disabled": 1}
    assert resolve_workspace(context, workspace_id).mode.value != "disabled"


def test_the_guard_lets_an_acknowledged_dangerous_write_through(context: ServiceContext) -> None:
    _with_rules(context, guard_dangerous_writes=True)
    _, workspace_id = stored_workspace(context)
    change = plans.override_change(workspace_id, "disabled")
    guard = plans.write_guard(context, change, plans.parse_acknowledged("to_disabled"))

    written = admin.set_override(context, workspace_id, "disabled", under_lock=guard)

    assert written.decision.mode.value == "disabled"


def test_the_guard_lets_a_harmless_write_through(context: ServiceContext) -> None:
    _with_rules(context, guard_dangerous_writes=True)
    org_id, _ = stored_workspace(context, org_default="platform_managed")
    change = plans.org_default_change(org_id, "platform_managed")

    admin.set_org_default(
        context, org_id, "platform_managed", under_lock=plans.write_guard(context, change)
    )


def test_without_the_setting_there_is_no_guard(context: ServiceContext) -> None:
    _, workspace_id = stored_workspace(context)

    assert plans.write_guard(context, plans.override_change(workspace_id, "disabled")) is None


# --- two people for dangerous plans ----------------------------------------------------------


def test_a_dangerous_direct_write_must_go_through_a_plan_when_approval_is_needed(
    context: ServiceContext,
) -> None:
    _with_rules(context, dangerous_plans_need_approval=True)
    _, workspace_id = stored_workspace(context)
    change = plans.override_change(workspace_id, "disabled")
    guard = plans.write_guard(context, change, plans.parse_acknowledged("to_disabled"))

    with pytest.raises(PlanNeedsApprovalError):
        admin.set_override(context, workspace_id, "disabled", under_lock=guard)


def test_a_dangerous_plan_needs_a_second_token_and_all_three_are_audited(
    context: ServiceContext,
) -> None:
    _with_rules(context, dangerous_plans_need_approval=True)
    org_id, workspace_id = stored_workspace(context)
    plan = plans.propose_plan(
        context, plans.override_change(workspace_id, "disabled"), audit_context=ALICE
    )
    assert plan.needs_approval

    with pytest.raises(PlanNeedsApprovalError):
        plans.apply_plan(context, plan.id, audit_context=ALICE)
    with pytest.raises(PlanSelfApprovalError):
        plans.approve_plan(context, plan.id, audit_context=ALICE)
    approved = plans.approve_plan(context, plan.id, audit_context=BOB)
    assert (approved.status, approved.approved_by, approved.needs_approval) == (
        "approved",
        BOB.actor,
        False,
    )
    plans.apply_plan(context, plan.id, audit_context=ALICE)

    entries = audit.list_entries(context, workspace_id=workspace_id, limit=10)
    by_action = {entry.action: entry.actor for entry in entries}
    assert by_action["plan.proposed"] == ALICE.actor
    assert by_action["plan.approved"] == BOB.actor
    assert by_action["plan.applied"] == ALICE.actor
    assert by_action["workspace.override_set"] == ALICE.actor
    assert org_id is not None


def test_a_harmless_plan_needs_no_approval(context: ServiceContext) -> None:
    _with_rules(context, dangerous_plans_need_approval=True)
    org_id, _ = stored_workspace(context, org_default="platform_managed")
    plan = plans.propose_plan(context, plans.org_default_change(org_id, "platform_managed"))

    assert not plan.needs_approval
    assert plans.apply_plan(context, plan.id).status == "applied"


def test_a_workspace_whose_model_is_a_sealed_secret_is_previewed_as_the_read_path_reads_it(
    context: ServiceContext,
) -> None:
    org_id, workspace_id = stored_workspace(
        context, model=None, org_secrets={"MOLECULE_MODEL": KIMI}
    )
    plan = plans.propose_plan(context, plans.org_default_change(org_id, "byok"))

    plans.apply_plan(context, plan.id)

    (impact,) = plan.preview["impacts"]
    decision = resolve_workspace(context, workspace_id)
    assert impact["after"] == {
        "mode": decision.mode.value,
        "source": decision.source.value,
        "provisioning": decision.provisioning.status.value,
    }
    assert impact["after"]["provisioning"] == "MISSING_BYOK_CREDENTIAL"
