"""The console's confirmation page shows a change's impact and applies the very plan it shows
(issue 15, item 2); under the two-person setting it waits for another admin's approval.

In-process tests (TestClient) pin what each page says and refuses; the browser tests (Debian's
Chromium) walk the journeys and save screenshots under ``test-output/ui/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from uuid import UUID

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, expect
from tests.ui.browsing import chromium, log_in, save_screenshot, served_app

from llmbilling.api.app import create_app
from llmbilling.api.etags import decision_etag
from llmbilling.config.settings import Settings
from llmbilling.service import admin, audit, plans
from llmbilling.service.context import ServiceContext
from llmbilling.service.resolve import read_decision
from llmbilling.service.tokens import create_token
from llmbilling.store.crypto import KeyRing

ORIGIN = "http://testserver"
SAME_SITE = {"Origin": ORIGIN}


@dataclass(frozen=True)
class Console:
    app: FastAPI
    context: ServiceContext
    org_id: UUID
    workspace_ids: tuple[UUID, ...]
    admin_token: str
    second_admin_token: str
    org_admin_token: str
    viewer_token: str
    foreign_org_admin_token: str


def _console(folder: str, *, two_people: bool) -> Iterator[Console]:
    settings = Settings(
        database_url=f"sqlite:///{folder}/console.sqlite3",
        secret_keys=KeyRing.new_key_text(1),
        dangerous_plans_need_approval=two_people,
    )
    context = ServiceContext.from_settings(settings)
    org = admin.create_org(context, "Acme Robotics")
    workspaces = tuple(
        admin.create_workspace(context, org.id, model="gpt-5.5", name=name).id
        for name in ("arm", "leg", "eye")
    )
    other = admin.create_org(context, "Globex")
    yield Console(
        app=create_app(settings, context=context),
        context=context,
        org_id=org.id,
        workspace_ids=workspaces,
        admin_token=create_token(context, scope="admin").token,
        second_admin_token=create_token(context, scope="admin").token,
        org_admin_token=create_token(context, scope="org_admin", org_id=org.id).token,
        viewer_token=create_token(context, scope="viewer", org_id=org.id).token,
        foreign_org_admin_token=create_token(context, scope="org_admin", org_id=other.id).token,
    )
    context.close()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    yield from _console(str(tmp_path_factory.mktemp("plans")), two_people=False)


@pytest.fixture(scope="module")
def two_person_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    yield from _console(str(tmp_path_factory.mktemp("plans-two")), two_people=True)


def _client(console: Console, token: str) -> TestClient:
    client = TestClient(console.app, base_url=ORIGIN, follow_redirects=False)
    response = client.post("/console/login", data={"token": token}, headers=SAME_SITE)
    assert response.status_code == 303
    return client


def _propose(client: TestClient, console: Console, **form: str) -> str:
    """The plan page's path after proposing an org default change through the form."""
    response = client.post(
        f"/console/orgs/{console.org_id}/default/plan", data=form, headers=SAME_SITE
    )
    assert response.status_code == 303, response.text
    location: str = response.headers["location"]
    assert re.fullmatch(r"/console/plans/[0-9a-f-]{36}", location)
    return location


def _default(console: Console) -> str | None:
    return admin.get_org(console.context, console.org_id).billing_mode_default_raw


@pytest.fixture(autouse=True)
def _no_org_default(console: Console) -> Iterator[None]:
    yield
    admin.set_org_default(console.context, console.org_id, None)


# --- the confirmation page -------------------------------------------------------------------


def test_proposing_writes_no_default_and_leads_to_the_plan_page(console: Console) -> None:
    client = _client(console, console.org_admin_token)
    _propose(client, console, mode="disabled")
    assert _default(console) is None


def test_the_page_shows_counts_danger_classes_with_samples_and_moved_workspaces(
    console: Console,
) -> None:
    client = _client(console, console.org_admin_token)
    page = client.get(_propose(client, console, mode="disabled"))
    assert page.status_code == 200
    assert "<strong>3</strong> of 3 workspaces would change mode or source" in page.text
    danger_row = re.search(r'data-testid="danger-to_disabled">(.*?)</tr>', page.text)
    assert danger_row is not None
    assert "<td>3</td>" in danger_row.group(1)
    assert all(str(workspace) in danger_row.group(1) for workspace in console.workspace_ids)
    assert page.text.count('data-testid="impact-row"') == 3


def test_the_apply_form_names_the_plan_it_shows(console: Console) -> None:
    client = _client(console, console.org_admin_token)
    location = _propose(client, console, mode="byok")
    plan_id = location.rsplit("/", 1)[1]
    page = client.get(location)
    assert f'action="/console/plans/{plan_id}/apply"' in page.text
    assert f'name="plan_id" value="{plan_id}"' in page.text


def test_applying_commits_exactly_the_plan_and_audits_its_proposer_and_applier(
    console: Console,
) -> None:
    client = _client(console, console.org_admin_token)
    plan_id = _propose(client, console, mode="byok").rsplit("/", 1)[1]
    response = client.post(
        f"/console/plans/{plan_id}/apply", headers={**SAME_SITE, "X-Request-ID": "plan-apply-1"}
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith(
        f"/console/orgs/{console.org_id}/default?changed=org_default_set"
    )
    assert _default(console) == "byok"
    entries = audit.list_entries(console.context, org_id=console.org_id, limit=50)
    actions = {entry.action for entry in entries if entry.request_id == "plan-apply-1"}
    assert actions == {"org.billing_mode_default_set", "plan.applied"}


def test_a_stale_plan_changes_nothing_names_what_moved_and_shows_a_fresh_preview(
    console: Console,
) -> None:
    client = _client(console, console.org_admin_token)
    plan_id = _propose(client, console, mode="byok").rsplit("/", 1)[1]
    admin.set_org_default(console.context, console.org_id, "disabled")  # someone else, meanwhile

    response = client.post(f"/console/plans/{plan_id}/apply", headers=SAME_SITE)

    assert response.status_code == 409
    assert "Changed since you looked" in response.text
    reason = re.search(r'data-testid="stale-reason">(.*?)</p>', response.text)
    assert reason is not None
    assert "orgs" in reason.group(1)
    assert "<strong>3</strong> of 3 workspaces would change mode or source" in response.text
    assert f'action="/console/orgs/{console.org_id}/default/plan"' in response.text
    assert _default(console) == "disabled"


def test_a_plan_is_applied_once(console: Console) -> None:
    client = _client(console, console.org_admin_token)
    plan_id = _propose(client, console, mode="byok").rsplit("/", 1)[1]
    assert client.post(f"/console/plans/{plan_id}/apply", headers=SAME_SITE).status_code == 303
    again = client.post(f"/console/plans/{plan_id}/apply", headers=SAME_SITE)
    assert again.status_code == 409
    assert "already applied" in again.text


def test_a_viewer_may_not_propose(console: Console) -> None:
    client = _client(console, console.viewer_token)
    before = len(plans.list_plans(console.context, org_ids=[console.org_id], limit=500))
    response = client.post(
        f"/console/orgs/{console.org_id}/default/plan", data={"mode": "byok"}, headers=SAME_SITE
    )
    assert response.status_code == 403
    assert len(plans.list_plans(console.context, org_ids=[console.org_id], limit=500)) == before


def test_another_orgs_admin_finds_neither_the_form_nor_the_plan(console: Console) -> None:
    owner = _client(console, console.org_admin_token)
    location = _propose(owner, console, mode="byok")
    foreign = _client(console, console.foreign_org_admin_token)
    assert foreign.get(location).status_code == 404
    proposed = foreign.post(
        f"/console/orgs/{console.org_id}/default/plan", data={"mode": "byok"}, headers=SAME_SITE
    )
    assert proposed.status_code == 404


def test_a_proposal_from_another_site_is_refused(console: Console) -> None:
    client = _client(console, console.org_admin_token)
    response = client.post(
        f"/console/orgs/{console.org_id}/default/plan",
        data={"mode": "byok"},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403


def test_a_mode_that_is_none_is_a_400_naming_it(console: Console) -> None:
    client = _client(console, console.org_admin_token)
    response = client.post(
        f"/console/orgs/{console.org_id}/default/plan",
        data={"mode": "platform-managed"},
        headers=SAME_SITE,
    )
    assert response.status_code == 400
    assert "platform-managed" in response.text


# --- two people ------------------------------------------------------------------------------


def test_a_dangerous_plan_says_it_needs_another_admin_and_offers_its_proposer_no_apply(
    two_person_console: Console,
) -> None:
    proposer = _client(two_person_console, two_person_console.admin_token)
    page = proposer.get(_propose(proposer, two_person_console, mode="disabled"))
    assert 'data-testid="needs-approval"' in page.text
    assert "needs approval by another admin" in page.text
    assert "/apply" not in page.text
    assert "Approve this plan" not in page.text


def test_another_admin_approves_then_the_plan_applies(two_person_console: Console) -> None:
    console = two_person_console
    proposer = _client(console, console.admin_token)
    location = _propose(proposer, console, mode="disabled")
    approver = _client(console, console.second_admin_token)
    assert "Approve this plan" in approver.get(location).text
    assert approver.post(f"{location}/approve", headers=SAME_SITE).status_code == 303

    assert 'data-testid="needs-approval"' not in proposer.get(location).text
    assert proposer.post(f"{location}/apply", headers=SAME_SITE).status_code == 303
    assert _default(console) == "disabled"
    admin.set_org_default(console.context, console.org_id, None)


def test_applying_an_unapproved_dangerous_plan_is_a_409(two_person_console: Console) -> None:
    console = two_person_console
    proposer = _client(console, console.admin_token)
    location = _propose(proposer, console, mode="disabled")
    response = proposer.post(f"{location}/apply", headers=SAME_SITE)
    assert response.status_code == 409
    assert "another admin must approve it" in response.text
    assert _default(console) is None


# --- overrides under a guarding deployment --------------------------------------------------


@pytest.fixture
def guarded_workspace(two_person_console: Console) -> Iterator[UUID]:
    """A workspace of the guarding console (two people for dangerous plans), its override
    cleared afterwards."""
    workspace_id = two_person_console.workspace_ids[0]
    yield workspace_id
    admin.set_override(two_person_console.context, workspace_id, None)


def _override(console: Console, workspace_id: UUID) -> str | None:
    return admin.get_workspace(console.context, workspace_id).override


def test_under_a_guard_the_override_confirmation_plans_the_change(
    two_person_console: Console, guarded_workspace: UUID
) -> None:
    client = _client(two_person_console, two_person_console.admin_token)
    page = client.get(f"/console/workspaces/{guarded_workspace}/override/set?mode=disabled")
    assert page.status_code == 200
    assert f'action="/console/workspaces/{guarded_workspace}/override/plan"' in page.text
    assert f'action="/console/workspaces/{guarded_workspace}/override/set"' not in page.text


def test_under_a_guard_a_dangerous_direct_override_write_is_refused_and_not_made(
    two_person_console: Console, guarded_workspace: UUID
) -> None:
    console = two_person_console
    version = read_decision(console.context, guarded_workspace).version
    assert version is not None
    response = _client(console, console.admin_token).post(
        f"/console/workspaces/{guarded_workspace}/override/set",
        data={"mode": "disabled", "version": decision_etag(version)},
        headers=SAME_SITE,
    )
    assert response.status_code == 409
    assert "to_disabled" in response.text
    assert _override(console, guarded_workspace) is None


def test_an_override_plan_shows_its_danger_and_applies_once_another_admin_approves(
    two_person_console: Console, guarded_workspace: UUID
) -> None:
    console = two_person_console
    proposer = _client(console, console.admin_token)
    proposed = proposer.post(
        f"/console/workspaces/{guarded_workspace}/override/plan",
        data={"mode": "disabled", "reason": "paused by support"},
        headers=SAME_SITE,
    )
    assert proposed.status_code == 303, proposed.text
    location = proposed.headers["location"].split("?", 1)[0]
    page = proposer.get(proposed.headers["location"])
    assert 'data-testid="danger-to_disabled"' in page.text
    assert 'data-testid="needs-approval"' in page.text
    assert _override(console, guarded_workspace) is None

    approver = _client(console, console.second_admin_token)
    assert approver.post(f"{location}/approve", headers=SAME_SITE).status_code == 303
    applied = proposer.post(
        f"{location}/apply", data={"reason": "paused by support"}, headers=SAME_SITE
    )
    assert applied.status_code == 303
    assert applied.headers["location"].startswith(
        f"/console/workspaces/{guarded_workspace}?changed=override_set"
    )
    assert _override(console, guarded_workspace) == "disabled"


# --- in the browser --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def test_an_org_admin_reviews_the_impact_and_applies_it_in_the_browser(
    console: Console, browser: Browser
) -> None:
    with served_app(console.app) as served:
        page = log_in(browser, served, console.org_admin_token)
        page.goto(f"{served}/console/orgs/{console.org_id}/default")
        page.get_by_label("Set the org default to").select_option("disabled")
        page.get_by_role("button", name="Review the change…").click()
        expect(page.get_by_role("heading", name="Set the org default to disabled?")).to_be_visible()
        expect(page.get_by_test_id("impact-counts")).to_contain_text("3 of 3 workspaces")
        expect(page.get_by_test_id("danger-to_disabled")).to_contain_text("3")
        expect(page.get_by_test_id("impact-row")).to_have_count(3)
        save_screenshot(page, "console-plan-confirm.png")
        page.get_by_role("button", name="Yes, set disabled").click()
        expect(page.get_by_role("status")).to_contain_text("Org default set.")
        expect(page.get_by_test_id("org-default")).to_have_text("disabled")
        page.close()


def test_two_admins_approve_and_apply_a_dangerous_plan_in_the_browser(
    two_person_console: Console, browser: Browser
) -> None:
    console = two_person_console
    with served_app(console.app) as served:
        proposer = log_in(browser, served, console.admin_token)
        proposer.goto(f"{served}/console/orgs/{console.org_id}/default")
        proposer.get_by_label("Set the org default to").select_option("disabled")
        proposer.get_by_role("button", name="Review the change…").click()
        expect(proposer.get_by_test_id("needs-approval")).to_be_visible()
        expect(proposer.get_by_role("button", name="Yes, set disabled")).to_have_count(0)
        save_screenshot(proposer, "console-plan-needs-approval.png")

        approver = log_in(browser, served, console.second_admin_token)
        approver.goto(proposer.url)
        approver.get_by_role("button", name="Approve this plan").click()
        expect(approver.get_by_test_id("needs-approval")).to_have_count(0)
        approver.close()

        proposer.reload()
        proposer.get_by_role("button", name="Yes, set disabled").click()
        expect(proposer.get_by_test_id("org-default")).to_have_text("disabled")
        proposer.close()
    admin.set_org_default(console.context, console.org_id, None)
