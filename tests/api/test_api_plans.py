"""``/v1/plans`` and the danger guard over HTTP (both engines): previews, plans that apply
exactly their change or answer 409 naming what moved, approval by a second token, and direct
writes refused unless their danger classes are acknowledged."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any
from uuid import UUID

import pytest
from tests.api.api_fixtures import Api, bearer

from llmbilling.service import admin
from llmbilling.service.context import ChangeRules
from llmbilling.service.tokens import Scope

PLANS = "/v1/plans"


def _rules(api: Api, **rules: Any) -> None:
    api.context.change_rules = dataclasses.replace(ChangeRules(), **rules)


def _org_default_change(org_id: UUID, mode: str | None) -> dict[str, Any]:
    return {"change": {"kind": "org_default", "org_id": str(org_id), "mode": mode}}


def test_a_preview_answers_counts_dangers_and_each_moved_workspace(api: Api) -> None:
    org_id, workspace_id = api.org_with_workspace()

    response = api.client.post(
        f"{PLANS}/preview",
        headers=api.admin_headers(),
        json=_org_default_change(org_id, "disabled"),
    )

    assert response.status_code == 200, response.text
    preview = response.json()
    assert (preview["total"], preview["changed"], preview["dangerous"]) == (1, 1, True)
    assert preview["dangers"]["to_disabled"] == 1
    assert preview["danger_samples"]["to_disabled"] == [str(workspace_id)]
    (impact,) = preview["impacts"]
    assert impact["after"] == {"mode": "disabled", "source": "org_default", "provisioning": "ok"}


def test_a_plan_is_created_read_and_applied(api: Api) -> None:
    org_id, workspace_id = api.org_with_workspace()
    headers = api.admin_headers()

    created = api.client.post(PLANS, headers=headers, json=_org_default_change(org_id, "byok"))
    assert created.status_code == 201, created.text
    plan_id = created.json()["id"]
    assert created.headers["location"] == f"{PLANS}/{plan_id}"
    assert api.client.get(f"{PLANS}/{plan_id}", headers=headers).json()["status"] == "proposed"

    applied = api.client.post(f"{PLANS}/{plan_id}/apply", headers=headers)

    assert applied.status_code == 200, applied.text
    assert applied.json()["status"] == "applied"
    decision = api.client.get(f"/v1/workspaces/{workspace_id}/llm-billing-mode", headers=headers)
    assert decision.json()["mode"] == created.json()["preview"]["impacts"][0]["after"]["mode"]


def test_a_stale_plan_is_a_409_problem_naming_what_moved(api: Api) -> None:
    org_id, workspace_id = api.org_with_workspace()
    headers = api.admin_headers()
    plan_id = api.client.post(
        PLANS, headers=headers, json=_org_default_change(org_id, "byok")
    ).json()["id"]
    admin.set_override(api.context, workspace_id, "disabled")

    response = api.client.post(f"{PLANS}/{plan_id}/apply", headers=headers)

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["code"], problem["moved"]) == ("PLAN_STALE", ["workspaces"])
    assert "workspaces" in problem["message"]


def test_a_plan_applied_twice_is_a_409(api: Api) -> None:
    org_id, _ = api.org_with_workspace()
    headers = api.admin_headers()
    plan_id = api.client.post(
        PLANS, headers=headers, json=_org_default_change(org_id, "byok")
    ).json()["id"]
    api.client.post(f"{PLANS}/{plan_id}/apply", headers=headers)

    again = api.client.post(f"{PLANS}/{plan_id}/apply", headers=headers)

    assert (again.status_code, again.json()["code"]) == (409, "PLAN_ALREADY_APPLIED")


def test_a_dangerous_plan_waits_for_a_second_token(api: Api) -> None:
    _rules(api, dangerous_plans_need_approval=True)
    org_id, _ = api.org_with_workspace()
    proposer = bearer(api.token(Scope.ORG_ADMIN, org_id))
    approver = api.admin_headers()
    plan = api.client.post(PLANS, headers=proposer, json=_org_default_change(org_id, "disabled"))
    plan_id = plan.json()["id"]
    assert plan.json()["needs_approval"] is True

    early = api.client.post(f"{PLANS}/{plan_id}/apply", headers=proposer)
    assert (early.status_code, early.json()["code"]) == (409, "PLAN_NEEDS_APPROVAL")
    assert early.json()["dangers"] == {"to_disabled": 1}
    own = api.client.post(f"{PLANS}/{plan_id}/approve", headers=proposer)
    assert (own.status_code, own.json()["code"]) == (409, "PLAN_SELF_APPROVAL")
    approved = api.client.post(f"{PLANS}/{plan_id}/approve", headers=approver)
    assert approved.json()["status"] == "approved"

    applied = api.client.post(f"{PLANS}/{plan_id}/apply", headers=proposer)
    assert applied.json()["status"] == "applied"
    assert applied.json()["approved_by"] != applied.json()["proposed_by"]


def test_a_secret_plan_takes_its_value_in_the_apply_body(api: Api) -> None:
    org_id, workspace_id = api.org_with_workspace(model="kimi-for-coding")
    headers = api.admin_headers()
    body = {
        "change": {
            "kind": "secret",
            "scope": "workspace",
            "owner_id": str(workspace_id),
            "name": "KIMI_API_KEY",
            "present": True,
        }
    }
    plan_id = api.client.post(PLANS, headers=headers, json=body).json()["id"]

    applied = api.client.post(
        f"{PLANS}/{plan_id}/apply", headers=headers, json={"value": "sk-SENTINEL-PLAN"}
    )

    assert applied.status_code == 200, applied.text
    assert "sk-SENTINEL-PLAN" not in applied.text
    assert org_id is not None


def test_a_fleet_wide_change_needs_an_admin(api: Api) -> None:
    org_id, _ = api.org_with_workspace()
    body = {"change": {"kind": "deployment", "proxy_configured": False}}

    refused = api.client.post(
        f"{PLANS}/preview", headers=bearer(api.token(Scope.ORG_ADMIN, org_id)), json=body
    )
    allowed = api.client.post(
        f"{PLANS}/preview", headers=api.admin_headers(), json={**body, "org_id": str(org_id)}
    )

    assert (refused.status_code, refused.json()["code"]) == (403, "FORBIDDEN")
    assert allowed.status_code == 200
    assert allowed.json()["dangers"]["to_platform_without_proxy"] == 1


def test_a_policy_swap_is_previewed(api: Api) -> None:
    org_id, _ = api.org_with_workspace(model="kimi-for-coding")
    admin.set_org_default(api.context, org_id, "platform_managed")
    body = {
        "change": {
            "kind": "configuration",
            "policy": {"rungs": ["workspace_override", "derived_provider", "deployment_default"]},
        },
        "org_id": str(org_id),
    }

    response = api.client.post(f"{PLANS}/preview", headers=api.admin_headers(), json=body)

    assert response.status_code == 200, response.text
    assert response.json()["dangers"]["to_byok_without_credential"] == 1


def test_an_org_token_lists_only_its_orgs_plans(api: Api) -> None:
    own, _ = api.org_with_workspace()
    foreign, _ = api.org_with_workspace()
    admin_headers = api.admin_headers()
    for org_id in (own, foreign):
        api.client.post(PLANS, headers=admin_headers, json=_org_default_change(org_id, "byok"))

    listed = api.client.get(PLANS, headers=bearer(api.token(Scope.VIEWER, own))).json()

    assert {plan["scope"]["org_id"] for plan in listed["plans"]} == {str(own)}


def test_an_unknown_plan_is_a_404_problem(api: Api) -> None:
    response = api.client.get(f"{PLANS}/{uuid.uuid4()}", headers=api.admin_headers())

    assert (response.status_code, response.json()["code"]) == (404, "PLAN_NOT_FOUND")


# --- the guard on the direct writes --------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/v1/workspaces/{workspace_id}/llm-billing-mode", {"mode": "disabled"}),
        ("PUT", "/v1/orgs/{org_id}/llm-billing-mode-default", {"mode": "disabled"}),
    ],
    ids=["override", "org-default"],
)
def test_a_guarded_dangerous_write_needs_its_classes_acknowledged(
    api: Api, method: str, path: str, body: dict[str, Any]
) -> None:
    _rules(api, guard_dangerous_writes=True)
    org_id, workspace_id = api.org_with_workspace()
    url = path.format(org_id=org_id, workspace_id=workspace_id)
    headers = api.admin_headers()

    refused = api.client.request(method, url, headers=headers, json=body)
    assert refused.status_code == 409
    problem = refused.json()
    assert problem["code"] == "DANGER_NOT_ACKNOWLEDGED"
    assert problem["dangers"] == {"to_disabled": 1}
    assert problem["unacknowledged"] == ["to_disabled"]

    acknowledged = api.client.request(
        method, url, headers={**headers, "Acknowledge-Dangers": "to_disabled"}, json=body
    )
    assert acknowledged.status_code == 200, acknowledged.text


def test_an_unknown_acknowledged_class_is_a_400_naming_the_classes(api: Api) -> None:
    _rules(api, guard_dangerous_writes=True)
    _, workspace_id = api.org_with_workspace()

    response = api.client.put(
        f"/v1/workspaces/{workspace_id}/llm-billing-mode",
        headers={**api.admin_headers(), "Acknowledge-Dangers": "to_everything"},
        json={"mode": "byok"},
    )

    assert response.status_code == 400
    assert response.json()["field"] == "acknowledge_dangers"
    assert "to_disabled" in response.json()["allowed"]
