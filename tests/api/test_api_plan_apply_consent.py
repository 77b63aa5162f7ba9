"""``POST /v1/plans/{id}/apply`` carries what a direct write carries (both engines): a
``reason`` in the body, kept in the audit log; the ``Acknowledge-Dangers`` header, without
which a guarded deployment refuses a dangerous plan (409 ``DANGER_NOT_ACKNOWLEDGED``). And the
override clear is its own change kind, as DELETE is its own method on the resource."""

from __future__ import annotations

import dataclasses
from typing import Any
from uuid import UUID

import pytest
from tests.api.api_fixtures import Api

from llmbilling.service import admin
from llmbilling.service.context import ChangeRules
from llmbilling.service.resolve import resolve_workspace

PLANS = "/v1/plans"


def _override_plan(api: Api, workspace_id: UUID, mode: str = "disabled") -> str:
    body = {
        "change": {"kind": "workspace_override", "workspace_id": str(workspace_id), "mode": mode}
    }
    created = api.client.post(PLANS, headers=api.admin_headers(), json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _guard(api: Api) -> None:
    api.context.change_rules = dataclasses.replace(ChangeRules(), guard_dangerous_writes=True)


def _reason_of(entries: list[dict[str, Any]], action: str) -> object:
    (entry,) = [entry for entry in entries if entry["action"] == action]
    return (entry["after"] or {}).get("reason")


def test_the_reason_in_the_apply_body_is_kept_with_the_write_and_the_plan(api: Api) -> None:
    _, workspace_id = api.org_with_workspace()
    plan_id = _override_plan(api, workspace_id)

    response = api.client.post(
        f"{PLANS}/{plan_id}/apply",
        headers={**api.admin_headers(), "X-Request-ID": "plan-apply-reason-1"},
        json={"reason": "ticket 15"},
    )

    assert response.status_code == 200, response.text
    entries = api.audit_entries("plan-apply-reason-1")
    assert _reason_of(entries, "workspace.override_set") == "ticket 15"
    assert _reason_of(entries, "plan.applied") == "ticket 15"


def test_a_reason_with_a_line_break_is_a_400_naming_reason(api: Api) -> None:
    _, workspace_id = api.org_with_workspace()
    plan_id = _override_plan(api, workspace_id)

    response = api.client.post(
        f"{PLANS}/{plan_id}/apply", headers=api.admin_headers(), json={"reason": "a\nb"}
    )

    assert response.status_code == 400
    assert response.json()["field"] == "reason"


def test_a_guarded_dangerous_plan_is_a_409_naming_its_classes_and_counts(api: Api) -> None:
    _guard(api)
    _, workspace_id = api.org_with_workspace()
    plan_id = _override_plan(api, workspace_id)

    response = api.client.post(f"{PLANS}/{plan_id}/apply", headers=api.admin_headers())

    assert response.status_code == 409
    problem = response.json()
    assert problem["code"] == "DANGER_NOT_ACKNOWLEDGED"
    assert (problem["dangers"], problem["unacknowledged"]) == ({"to_disabled": 1}, ["to_disabled"])


def test_a_guarded_dangerous_plan_applies_with_its_classes_acknowledged(api: Api) -> None:
    _guard(api)
    _, workspace_id = api.org_with_workspace()
    plan_id = _override_plan(api, workspace_id)

    response = api.client.post(
        f"{PLANS}/{plan_id}/apply",
        headers={**api.admin_headers(), "Acknowledge-Dangers": "to_disabled"},
    )

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "applied"


def test_an_override_clear_is_planned_as_its_own_kind(api: Api) -> None:
    _, workspace_id = api.org_with_workspace()
    admin.set_override(api.context, workspace_id, "byok")
    body = {"change": {"kind": "workspace_override_clear", "workspace_id": str(workspace_id)}}
    created = api.client.post(PLANS, headers=api.admin_headers(), json=body)
    assert created.status_code == 201, created.text

    applied = api.client.post(f"{PLANS}/{created.json()['id']}/apply", headers=api.admin_headers())

    assert applied.status_code == 200, applied.text
    assert resolve_workspace(api.context, workspace_id).source.value != "workspace_override"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "workspace_override", "mode": None}, "mode"),
        ({"kind": "workspace_override_clear", "expires_at": "2999-01-01T00:00:00Z"}, "expires_at"),
        ({"kind": "workspace_override_clear", "mode": "byok"}, "mode"),
    ],
    ids=["override-without-mode", "clear-with-expiry", "clear-with-mode"],
)
def test_a_change_the_document_does_not_describe_is_a_400_naming_its_field(
    api: Api, change: dict[str, Any], field: str
) -> None:
    _, workspace_id = api.org_with_workspace()
    body = {"change": {**change, "workspace_id": str(workspace_id)}}

    response = api.client.post(PLANS, headers=api.admin_headers(), json=body)

    assert response.status_code == 400, response.text
    assert response.json()["field"] == field


def test_the_plan_list_links_its_first_plan_to_read_approve_and_apply(api: Api) -> None:
    document = api.client.get("/openapi.json").json()

    links = document["paths"][PLANS]["get"]["responses"]["200"]["links"]

    assert set(links) == {"ReadPlan", "ApprovePlan", "ApplyPlan"}
    for target in links.values():
        assert target["parameters"] == {"plan_id": "$response.body#/plans/0/id"}


@pytest.mark.parametrize("target", ["override", "apply"])
def test_an_unknown_acknowledged_class_is_a_400_even_when_nothing_is_guarded(
    api: Api, target: str
) -> None:
    _, workspace_id = api.org_with_workspace()
    headers = {**api.admin_headers(), "Acknowledge-Dangers": "{}"}
    if target == "override":
        url, body = f"/v1/workspaces/{workspace_id}/llm-billing-mode", {"mode": "byok"}
        response = api.client.put(url, headers=headers, json=body)
    else:
        response = api.client.post(
            f"{PLANS}/{_override_plan(api, workspace_id)}/apply", headers=headers
        )

    assert response.status_code == 400
    assert response.json()["field"] == "acknowledge_dangers"
