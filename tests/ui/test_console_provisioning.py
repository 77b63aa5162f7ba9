"""The console shows what provisioning would do (item 1), a workspace's effective model with
its origin and its credential names (item 2), and takes a reason and an expiry with an
override (item 9). Real app under uvicorn, Debian's Chromium; screenshots in test-output/ui/.

The deployment has no metering proxy, so ``platform_managed`` workspaces cannot provision.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from uuid import UUID

import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, expect
from tests.ui.browsing import chromium, log_in, save_screenshot, served_app

from llmbilling.api.app import create_app
from llmbilling.config.settings import Settings
from llmbilling.service import admin, secrets
from llmbilling.service.tokens import Scope, create_token
from llmbilling.store.crypto import KeyRing

SECRET_VALUE = "sk-gem-never-shown"


@dataclass(frozen=True)
class Fleet:
    app: FastAPI
    org_id: UUID
    workspaces: dict[str, UUID]
    token: str


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    folder = tmp_path_factory.mktemp("provisioning-console")
    app = create_app(
        Settings(
            database_url=f"sqlite:///{folder / 'store.sqlite3'}",
            secret_keys=KeyRing.new_key_text(1),
        )
    )
    context = app.state.context
    org = admin.create_org(context, "self-hosted fleet")
    secrets.set_secret(context, "org", org.id, "MOLECULE_MODEL", "gemini-2.5-pro")
    made = {
        "platform": admin.create_workspace(
            context,
            org.id,
            name="platform-no-proxy",
            model="claude-opus-4-7",
            override="platform_managed",
        ),
        "keyless": admin.create_workspace(
            context, org.id, name="byok-keyless", runtime="gemini-cli", model="gemini-2.5-pro"
        ),
        "ready": admin.create_workspace(context, org.id, name="byok-ready", runtime="gemini-cli"),
    }
    secrets.set_secret(context, "workspace", made["ready"].id, "GEMINI_API_KEY", SECRET_VALUE)
    yield Fleet(
        app,
        org.id,
        {name: workspace.id for name, workspace in made.items()},
        create_token(context, scope=Scope.ADMIN).token,
    )
    context.close()


@pytest.fixture(scope="module")
def served(fleet: Fleet) -> Iterator[str]:
    with served_app(fleet.app) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def _badge(page: Page, workspace_id: UUID) -> str | None:
    return page.locator(
        f'tr[data-workspace-id="{workspace_id}"] [data-testid="provisioning-badge"]'
    ).get_attribute("data-status")


def test_the_fleet_shows_a_provisioning_badge_per_workspace_and_filters_on_it(
    browser: Browser, served: str, fleet: Fleet
) -> None:
    page = log_in(browser, served, fleet.token)
    page.goto(f"{served}/console/orgs/{fleet.org_id}")

    assert {name: _badge(page, ws) for name, ws in fleet.workspaces.items()} == {
        "platform": "MISSING_PLATFORM_PROXY",
        "keyless": "MISSING_BYOK_CREDENTIAL",
        "ready": "ok",
    }
    save_screenshot(page, "console-fleet-provisioning-badges.png")

    page.get_by_label("Provisioning").select_option("failing")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tr[data-workspace-id]")).to_have_count(2)
    expect(page.locator(f'tr[data-workspace-id="{fleet.workspaces["ready"]}"]')).to_have_count(0)
    save_screenshot(page, "console-fleet-provisioning-failing.png")
    page.close()


def test_the_workspace_page_leads_with_the_verdict_and_names_what_would_fix_it(
    browser: Browser, served: str, fleet: Fleet
) -> None:
    page = log_in(browser, served, fleet.token)
    page.goto(f"{served}/console/workspaces/{fleet.workspaces['keyless']}")

    verdict = page.get_by_test_id("provisioning")
    expect(verdict).to_have_attribute("data-status", "MISSING_BYOK_CREDENTIAL")
    expect(verdict).to_contain_text("provider google")
    expect(verdict).to_contain_text("GEMINI_API_KEY")
    save_screenshot(page, "console-workspace-provisioning-failing.png")
    page.close()


def test_the_workspace_page_shows_the_model_origin_and_credential_names_never_values(
    browser: Browser, served: str, fleet: Fleet
) -> None:
    page = log_in(browser, served, fleet.token)
    page.goto(f"{served}/console/workspaces/{fleet.workspaces['ready']}")

    expect(page.get_by_test_id("provisioning")).to_have_attribute("data-status", "ok")
    expect(page.get_by_test_id("effective-model")).to_contain_text(
        "gemini-2.5-pro from MOLECULE_MODEL (org scope)"
    )
    expect(page.get_by_test_id("credential-names")).to_contain_text("GEMINI_API_KEY (workspace)")
    assert SECRET_VALUE not in page.content()
    save_screenshot(page, "console-workspace-model-origin.png")
    page.close()


def test_an_override_set_in_the_console_keeps_its_reason_and_expiry(
    browser: Browser, served: str, fleet: Fleet
) -> None:
    page = log_in(browser, served, fleet.token)
    workspace_id = fleet.workspaces["platform"]
    page.goto(f"{served}/console/workspaces/{workspace_id}")
    page.get_by_label("Set this workspace's mode to").select_option("disabled")
    page.get_by_role("button", name="Set override…").click()

    page.get_by_label("Why (optional, kept in the audit trail)").fill("no proxy here yet")
    page.get_by_label("Expires at (optional, RFC 3339 with a time zone)").fill(
        "2099-01-01T00:00:00Z"
    )
    save_screenshot(page, "console-override-reason-confirm.png")
    page.get_by_role("button", name="Yes, set disabled").click()

    expect(page.get_by_test_id("provisioning")).to_have_attribute("data-status", "ok")
    expect(page.get_by_test_id("stored-override")).to_contain_text("expires")
    expect(page.get_by_test_id("audit-reason").first).to_have_text("no proxy here yet")
    save_screenshot(page, "console-override-reason-audited.png")
    page.close()
