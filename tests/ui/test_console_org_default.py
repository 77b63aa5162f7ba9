"""The console edits an org's default: set, change, clear, each through a plan whose
confirmation page shows its impact and applies it, audited through ``admin.set_org_default``
like the API's writes, with the reason typed on the form.

In-process tests (TestClient) pin who sees the controls and what a stale or forged post gets;
the browser tests (Debian's Chromium) walk the journeys and save screenshots under
``test-output/ui/``.
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
from llmbilling.config.settings import Settings
from llmbilling.service import admin, audit
from llmbilling.service.context import ServiceContext
from llmbilling.service.tokens import create_token
from llmbilling.store.crypto import KeyRing

ORIGIN = "http://testserver"


@dataclass(frozen=True)
class Console:
    app: FastAPI
    context: ServiceContext
    org_id: UUID
    admin_token: str
    org_admin_token: str
    org_admin_token_id: str
    viewer_token: str
    foreign_org_admin_token: str


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    folder = tmp_path_factory.mktemp("org-default")
    settings = Settings(
        database_url=f"sqlite:///{folder / 'console.sqlite3'}",
        secret_keys=KeyRing.new_key_text(1),
    )
    context = ServiceContext.from_settings(settings)
    org = admin.create_org(context, "Acme Robotics")
    for name in ("arm", "leg"):
        admin.create_workspace(context, org.id, model="gpt-5.5", name=name)
    other = admin.create_org(context, "Globex")
    org_admin = create_token(context, scope="org_admin", org_id=org.id)
    yield Console(
        app=create_app(settings, context=context),
        context=context,
        org_id=org.id,
        admin_token=create_token(context, scope="admin").token,
        org_admin_token=org_admin.token,
        org_admin_token_id=str(org_admin.info.id),
        viewer_token=create_token(context, scope="viewer", org_id=org.id).token,
        foreign_org_admin_token=create_token(context, scope="org_admin", org_id=other.id).token,
    )
    context.close()


def _client(console: Console, token: str) -> TestClient:
    client = TestClient(console.app, base_url=ORIGIN, follow_redirects=False)
    response = client.post("/console/login", data={"token": token}, headers={"Origin": ORIGIN})
    assert response.status_code == 303
    return client


# --- who may change it -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "controls"), [("admin", True), ("org_admin", True), ("viewer", False)]
)
def test_only_a_token_that_may_write_the_org_sees_the_controls(
    console: Console, who: str, controls: bool
) -> None:
    token = {"admin": console.admin_token, "org_admin": console.org_admin_token}.get(
        who, console.viewer_token
    )
    client = _client(console, token)

    fleet = client.get(f"/console/orgs/{console.org_id}").text
    page = client.get(f"/console/orgs/{console.org_id}/default").text

    assert ("Change the org default…" in fleet) is controls
    assert ("Review the change…" in page) is controls


def test_another_orgs_admin_finds_nothing_here(console: Console) -> None:
    client = _client(console, console.foreign_org_admin_token)

    response = client.get(f"/console/orgs/{console.org_id}/default")

    assert response.status_code == 404


# Refusals of the proposal itself (viewer, another site, a mode that is none) are pinned by
# tests/ui/test_console_plans.py; these pin what the org default page's form carries.


def _propose(client: TestClient, console: Console, data: dict[str, str]) -> str:
    """The confirmation page's path the proposal redirects to."""
    response = client.post(
        f"/console/orgs/{console.org_id}/default/plan", data=data, headers={"Origin": ORIGIN}
    )
    assert response.status_code == 303
    return str(response.headers["location"])


def test_the_reason_typed_on_the_form_is_on_the_confirmation(console: Console) -> None:
    client = _client(console, console.org_admin_token)

    confirmation = _propose(client, console, {"mode": "byok", "reason": "ticket 41"})
    page = client.get(confirmation)

    assert 'name="reason" value="ticket 41"' in page.text


def test_a_reason_the_write_would_refuse_is_refused_before_the_confirmation(
    console: Console,
) -> None:
    client = _client(console, console.org_admin_token)

    response = client.post(
        f"/console/orgs/{console.org_id}/default/plan",
        data={"mode": "byok", "reason": "x" * (admin.MAX_REASON_LENGTH + 1)},
        headers={"Origin": ORIGIN},
    )

    assert response.status_code == 400
    assert "reason:" in response.text


def test_an_applied_plan_is_audited_under_the_token_with_its_reason(console: Console) -> None:
    client = _client(console, console.org_admin_token)
    plan_path = _propose(client, console, {"mode": "byok"}).split("?")[0]

    response = client.post(
        f"{plan_path}/apply",
        data={"reason": "ticket 42"},
        headers={"Origin": ORIGIN, "X-Request-ID": "org-default-audit-1"},
    )

    assert response.status_code == 303
    entries = [
        entry
        for entry in audit.list_entries(console.context, org_id=console.org_id, limit=50)
        if entry.request_id == "org-default-audit-1"
    ]
    by_action = {entry.action: entry for entry in entries}
    assert set(by_action) == {"org.billing_mode_default_set", "plan.applied"}
    written = by_action["org.billing_mode_default_set"]
    assert written.actor == f"token:{console.org_admin_token_id}"
    assert written.after == {"llm_billing_mode_default": "byok", "reason": "ticket 42"}
    assert by_action["plan.applied"].reason == "ticket 42"
    admin.set_org_default(console.context, console.org_id, None)


# --- in the browser --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(console: Console) -> Iterator[str]:
    with served_app(console.app) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def test_an_org_admin_sets_changes_and_clears_the_org_default_in_the_browser(
    console: Console, served: str, browser: Browser
) -> None:
    page = log_in(browser, served, console.org_admin_token)
    page.get_by_role("link", name="Acme Robotics").click()
    page.get_by_role("link", name="Change the org default…").click()
    expect(page.get_by_test_id("org-default")).to_contain_text("none")

    # Set.
    page.get_by_label("Set the org default to").select_option("byok")
    page.get_by_label("Reason (optional)").first.fill("moving to own keys")
    page.get_by_role("button", name="Review the change…").click()
    expect(page.get_by_role("heading", name="Set the org default to byok?")).to_be_visible()
    expect(page.get_by_test_id("default-after")).to_have_text("byok")
    save_screenshot(page, "console-org-default-confirm.png")
    page.get_by_role("button", name="Yes, set byok").click()
    expect(page.get_by_role("status")).to_contain_text("Org default set.")
    expect(page.get_by_test_id("org-default")).to_have_text("byok")

    # Change.
    page.get_by_label("Set the org default to").select_option("disabled")
    page.get_by_role("button", name="Review the change…").click()
    expect(page.get_by_test_id("default-now")).to_have_text("byok")
    page.get_by_role("button", name="Yes, set disabled").click()
    expect(page.get_by_test_id("org-default")).to_have_text("disabled")
    save_screenshot(page, "console-org-default-set.png")

    # Clear.
    page.get_by_role("button", name="Clear the org default…").click()
    expect(page.get_by_role("heading", name="Clear the org default?")).to_be_visible()
    page.get_by_role("button", name="Yes, clear the org default").click()
    expect(page.get_by_role("status")).to_contain_text("Org default cleared.")
    expect(page.get_by_role("button", name="Clear the org default…")).to_have_count(0)

    # Each change is in the org's audit trail (among its plans' entries), newest first, the
    # reason typed on the form with the first.
    page.get_by_role("link", name="This org's audit trail").click()
    rows = page.locator("table.audit tbody tr")
    cleared = rows.filter(has_text="org.billing_mode_default_cleared")
    set_rows = rows.filter(has_text="org.billing_mode_default_set")
    expect(cleared.nth(0)).to_be_visible()
    expect(set_rows.nth(0)).to_contain_text("disabled")
    expect(set_rows.nth(1)).to_contain_text("moving to own keys")
    page.close()


def test_a_stale_confirmation_in_the_browser_shows_changed_since_you_looked(
    console: Console, served: str, browser: Browser
) -> None:
    page = log_in(browser, served, console.admin_token)
    page.goto(f"{served}/console/orgs/{console.org_id}/default")
    page.get_by_label("Set the org default to").select_option("platform_managed")
    page.get_by_role("button", name="Review the change…").click()
    expect(
        page.get_by_role("heading", name="Set the org default to platform_managed?")
    ).to_be_visible()

    admin.set_org_default(console.context, console.org_id, "byok")  # someone else, meanwhile
    page.get_by_role("button", name="Yes, set platform_managed").click()

    expect(page.get_by_role("heading", name="Changed since you looked")).to_be_visible()
    expect(page.get_by_test_id("org-default")).to_have_text("byok")
    save_screenshot(page, "console-org-default-stale.png")
    page.get_by_role("link", name="Look at it again").click()
    expect(page).to_have_url(re.compile(rf"/console/orgs/{console.org_id}/default$"))
    admin.set_org_default(console.context, console.org_id, None)
    page.close()
