"""The console's what-if pages: propose a policy, watch the job, read the report.

Fast tests use FastAPI's TestClient; the browser test drives Debian's Chromium through the
#2608 preview and saves a screenshot of the report under ``test-output/ui/``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from uuid import UUID

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, expect
from tests.ui.browsing import SCREENSHOT_DIR, chromium, served_app

from llmbilling.api.app import create_app
from llmbilling.config.settings import Settings
from llmbilling.service import admin
from llmbilling.service.context import ServiceContext
from llmbilling.service.tokens import create_token
from llmbilling.store.crypto import KeyRing

ORIGIN = "http://testserver"
DROPS_THE_ORG_RUNG = "rungs: [workspace_override, derived_provider, deployment_default]\n"


@dataclass(frozen=True)
class WhatIfConsole:
    app: FastAPI
    context: ServiceContext
    org_id: UUID
    other_org_id: UUID
    org_admin_token: str
    viewer_token: str
    other_org_admin_token: str


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WhatIfConsole]:
    folder = tmp_path_factory.mktemp("whatif-console")
    settings = Settings(
        database_url=f"sqlite:///{folder / 'console.sqlite3'}",
        secret_keys=KeyRing.new_key_text(1),
        MOLECULE_LLM_BASE_URL="https://proxy.example/v1",
        MOLECULE_LLM_USAGE_TOKEN="usage-token-never-shown",
    )
    context = ServiceContext.from_settings(settings)
    org = admin.create_org(context, "fresh-saas-org")
    admin.set_org_default(context, org.id, "platform_managed")
    for _ in range(5):
        admin.create_workspace(context, org.id, runtime="claude-code", model="kimi-for-coding")
    other = admin.create_org(context, "someone-else")
    yield WhatIfConsole(
        app=create_app(settings, context=context),
        context=context,
        org_id=org.id,
        other_org_id=other.id,
        org_admin_token=create_token(context, scope="org_admin", org_id=org.id).token,
        viewer_token=create_token(context, scope="viewer", org_id=org.id).token,
        other_org_admin_token=create_token(context, scope="org_admin", org_id=other.id).token,
    )
    context.close()


def signed_in(console: WhatIfConsole, token: str) -> TestClient:
    client = TestClient(console.app, base_url=ORIGIN, follow_redirects=False)
    response = client.post("/console/login", data={"token": token}, headers={"Origin": ORIGIN})
    assert response.status_code == 303
    return client


def start(client: TestClient, org_id: UUID, policy: str) -> str:
    response = client.post(
        "/console/whatif",
        data={"policy": policy, "registry": "", "org": str(org_id)},
        headers={"Origin": ORIGIN},
    )
    assert response.status_code == 303, response.text
    location: str = response.headers["location"]
    return location


def finished_page(client: TestClient, location: str) -> str:
    """The job page once the job has ended (a generous bound, not a timing assertion)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        page = client.get(location)
        assert page.status_code == 200
        if 'http-equiv="refresh"' not in page.text:
            return page.text
        time.sleep(0.05)
    raise AssertionError(f"{location} did not finish")


def test_an_org_admin_previews_the_2608_change_and_sees_the_danger(
    console: WhatIfConsole,
) -> None:
    client = signed_in(console, console.org_admin_token)
    page = finished_page(client, start(client, console.org_id, DROPS_THE_ORG_RUNG))
    assert "Dangerous" in page
    assert "to_byok_without_credential" in page
    assert "<svg" in page
    assert "5 of 5 workspaces would change" in page


def test_the_full_report_page_is_served_self_contained(console: WhatIfConsole) -> None:
    client = signed_in(console, console.org_admin_token)
    location = start(client, console.org_id, DROPS_THE_ORG_RUNG)
    finished_page(client, location)
    report = client.get(f"{location}/report.html")
    assert report.status_code == 200
    assert "<script" not in report.text
    assert "script-src" not in report.headers["content-security-policy"]


def test_an_invalid_policy_is_shown_back_with_the_problem(console: WhatIfConsole) -> None:
    client = signed_in(console, console.org_admin_token)
    response = client.post(
        "/console/whatif",
        data={"policy": "rungs: [org_default]\n", "registry": "", "org": str(console.org_id)},
        headers={"Origin": ORIGIN},
    )
    assert response.status_code == 422
    assert "deployment_default" in response.text
    assert "rungs: [org_default]" in response.text


def test_a_viewer_may_not_start_a_what_if(console: WhatIfConsole) -> None:
    client = signed_in(console, console.viewer_token)
    assert 'action="/console/whatif"' not in client.get("/console/whatif").text
    response = client.post(
        "/console/whatif",
        data={"policy": DROPS_THE_ORG_RUNG, "org": str(console.org_id)},
        headers={"Origin": ORIGIN},
    )
    assert response.status_code == 403


def test_another_orgs_what_if_is_not_found(console: WhatIfConsole) -> None:
    owner = signed_in(console, console.org_admin_token)
    location = start(owner, console.org_id, DROPS_THE_ORG_RUNG)
    stranger = signed_in(console, console.other_org_admin_token)
    assert stranger.get(location).status_code == 404
    assert stranger.get(f"{location}/report.html").status_code == 404


def test_a_what_if_from_another_origin_is_refused(console: WhatIfConsole) -> None:
    client = signed_in(console, console.org_admin_token)
    response = client.post(
        "/console/whatif",
        data={"policy": DROPS_THE_ORG_RUNG, "org": str(console.org_id)},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def test_an_operator_previews_a_policy_change_in_the_browser(
    console: WhatIfConsole, browser: Browser, capsys: pytest.CaptureFixture[str]
) -> None:
    with served_app(console.app) as base_url:
        page = browser.new_page(viewport={"width": 1200, "height": 1100})
        page.goto(f"{base_url}/console/login")
        page.fill("input[name=token]", console.org_admin_token)
        page.click("button[type=submit]")
        page.goto(f"{base_url}/console/whatif")
        page.fill("textarea[name=policy]", DROPS_THE_ORG_RUNG)
        page.click("text=Run what-if")
        danger = page.locator('tr[data-danger="to_byok_without_credential"]')
        expect(danger).to_contain_text("5", timeout=60_000)
        expect(page.locator(".alert")).to_contain_text("Dangerous")
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        screenshot = SCREENSHOT_DIR / "console-whatif-report.png"
        page.screenshot(path=str(screenshot), full_page=True)
        page.close()
    with capsys.disabled():
        print(f"\nscreenshot: {screenshot}")
    assert screenshot.stat().st_size > 0
