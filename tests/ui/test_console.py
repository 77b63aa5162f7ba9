"""The web console, end to end: the real app on a seeded SQLite store.

Fast tests drive it through FastAPI's TestClient (login, redirects, escaping, CSRF, scopes).
The browser journey runs the app under uvicorn on 127.0.0.1 and drives Debian's Chromium
headless with Playwright; it saves a screenshot under ``test-output/ui/`` at the repo root.
Without /usr/bin/chromium the browser tests skip, unless ``CI=true``: then they fail.
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
from tests.ui.browsing import SCREENSHOT_DIR, chromium, served_app

from llmbilling.api.app import create_app
from llmbilling.api.console import views
from llmbilling.api.console.routes import FLEET_PAGE_SIZE
from llmbilling.api.etags import decision_etag
from llmbilling.config.settings import Settings
from llmbilling.service import admin, secrets
from llmbilling.service.context import ServiceContext
from llmbilling.service.demo import seed_demo_fleet
from llmbilling.service.provision import provision_workspace
from llmbilling.service.resolve import read_decision
from llmbilling.service.tokens import create_token
from llmbilling.store.crypto import KeyRing

ORIGIN = "http://testserver"
HOSTILE_NAME = '<script>alert("owned")</script> & Co'


@dataclass(frozen=True)
class Console:
    """The app, its store and what the tests seeded."""

    app: FastAPI
    context: ServiceContext
    org_id: UUID
    other_org_id: UUID
    byok_workspace_id: UUID
    drifting_workspace_id: UUID
    journey_workspace_id: UUID
    admin_token: str
    viewer_token: str


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    folder = tmp_path_factory.mktemp("console")
    settings = Settings(
        database_url=f"sqlite:///{folder / 'console.sqlite3'}",
        secret_keys=KeyRing.new_key_text(1),
        MOLECULE_LLM_BASE_URL="https://proxy.example/v1",
        MOLECULE_LLM_USAGE_TOKEN="usage-token-never-shown",
    )
    context = ServiceContext.from_settings(settings)
    seed_demo_fleet(context, workspace_count=40, seed=20260)

    org = admin.create_org(context, HOSTILE_NAME)
    secrets.set_secret(context, "org", org.id, "ANTHROPIC_API_KEY", "sk-ant-never-shown")
    # A vendor model with its credential: derived byok.
    byok = admin.create_workspace(
        context, org.id, runtime="claude-code", model="claude-opus-4-7", name="byok-by-model"
    )
    # Provisioned as byok, then overridden: the running container no longer matches.
    drifting = admin.create_workspace(
        context, org.id, runtime="claude-code", model="claude-opus-4-7", name="drifting"
    )
    provision_workspace(context, drifting.id)
    admin.set_override(context, drifting.id, "platform_managed")
    journey = admin.create_workspace(
        context, org.id, runtime="codex", model="gpt-5.5", name="journey-workspace"
    )
    other = admin.create_org(context, "someone-else")

    app = create_app(settings, context=context)
    yield Console(
        app=app,
        context=context,
        org_id=org.id,
        other_org_id=other.id,
        byok_workspace_id=byok.id,
        drifting_workspace_id=drifting.id,
        journey_workspace_id=journey.id,
        admin_token=create_token(context, scope="admin").token,
        viewer_token=create_token(context, scope="viewer", org_id=org.id).token,
    )
    context.close()


def _client(console: Console, token: str | None = None) -> TestClient:
    client = TestClient(console.app, base_url=ORIGIN, follow_redirects=False)
    if token is not None:
        response = client.post("/console/login", data={"token": token}, headers={"Origin": ORIGIN})
        assert response.status_code == 303
    return client


# --- signing in ------------------------------------------------------------------------------


def test_a_console_page_without_a_session_redirects_to_the_login_form(console: Console) -> None:
    response = _client(console).get(f"/console/orgs/{console.org_id}?mode=byok")

    assert response.status_code == 303
    assert response.headers["location"] == (
        f"/console/login?next=%2Fconsole%2Forgs%2F{console.org_id}%3Fmode%3Dbyok"
    )


def test_logging_in_sets_an_httponly_strict_cookie_and_never_renders_the_token(
    console: Console,
) -> None:
    client = _client(console)
    response = client.post(
        "/console/login",
        data={"token": console.admin_token, "next": f"/console/orgs/{console.org_id}"},
        headers={"Origin": ORIGIN},
    )

    assert response.status_code == 303
    assert response.headers["location"] == f"/console/orgs/{console.org_id}"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()
    assert "Path=/console" in cookie
    page = client.get(f"/console/orgs/{console.org_id}")
    assert page.status_code == 200
    assert console.admin_token not in page.text


def test_a_bad_token_is_refused_without_echoing_it(console: Console) -> None:
    response = _client(console).post(
        "/console/login", data={"token": "llmb_not-a-real-token"}, headers={"Origin": ORIGIN}
    )

    assert response.status_code == 401
    assert "That token was not accepted." in response.text
    assert "llmb_not-a-real-token" not in response.text
    assert "set-cookie" not in response.headers


def test_login_never_redirects_off_the_console(console: Console) -> None:
    response = _client(console).post(
        "/console/login",
        data={"token": console.admin_token, "next": "https://evil.example/console"},
        headers={"Origin": ORIGIN},
    )

    assert response.headers["location"] == "/console/"


def test_logout_clears_the_session(console: Console) -> None:
    client = _client(console, console.admin_token)

    response = client.post("/console/logout", headers={"Origin": ORIGIN})

    assert response.status_code == 303
    assert 'llmbilling_console=""' in response.headers["set-cookie"]
    assert client.get("/console/").status_code == 303


# --- CSRF ------------------------------------------------------------------------------------


def test_a_change_from_another_origin_is_refused_and_not_made(console: Console) -> None:
    client = _client(console, console.admin_token)
    url = f"/console/workspaces/{console.byok_workspace_id}/override/set"

    form = {"mode": "disabled", "version": _version(console, console.byok_workspace_id)}

    cross_site = client.post(url, data=form, headers={"Origin": "https://evil"})
    no_origin = client.post(url, data=form)

    assert cross_site.status_code == 403
    assert no_origin.status_code == 403
    assert admin.get_workspace(console.context, console.byok_workspace_id).override is None


def test_a_same_origin_referer_is_enough_when_the_browser_sends_no_origin(
    console: Console,
) -> None:
    client = _client(console, console.admin_token)
    workspace = admin.create_workspace(console.context, console.org_id, model="gpt-5.5")

    response = client.post(
        f"/console/workspaces/{workspace.id}/override/set",
        data={"mode": "byok", "version": _version(console, workspace.id)},
        headers={"Referer": f"{ORIGIN}/console/workspaces/{workspace.id}/override/set"},
    )

    assert response.status_code == 303
    assert admin.get_workspace(console.context, workspace.id).override == "byok"


def test_a_change_confirmed_against_a_stale_decision_is_refused(console: Console) -> None:
    client = _client(console, console.admin_token)
    workspace = admin.create_workspace(console.context, console.org_id, model="gpt-5.5")
    confirmed_version = _version(console, workspace.id)
    admin.set_override(console.context, workspace.id, "platform_managed")  # someone else

    response = client.post(
        f"/console/workspaces/{workspace.id}/override/clear",
        data={"version": confirmed_version},
        headers={"Origin": ORIGIN},
    )

    assert response.status_code == 409
    assert "Nothing was changed" in response.text
    assert admin.get_workspace(console.context, workspace.id).override == "platform_managed"


# --- what the pages show ---------------------------------------------------------------------


def test_names_are_escaped_never_interpreted(console: Console) -> None:
    page = _client(console, console.admin_token).get(f"/console/orgs/{console.org_id}")

    assert "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt; &amp; Co" in page.text
    assert "<script>" not in page.text


def test_the_fleet_marks_a_workspace_whose_decision_drifted_from_its_provision(
    console: Console,
) -> None:
    page = _client(console, console.admin_token).get(f"/console/orgs/{console.org_id}")

    row = _fleet_row(page.text, console.drifting_workspace_id)
    assert "byok → platform_managed" in row
    assert "⚑" not in _fleet_row(page.text, console.byok_workspace_id)


def test_the_fleet_filters_on_the_decided_mode_and_source(console: Console) -> None:
    client = _client(console, console.admin_token)

    page = client.get(f"/console/orgs/{console.org_id}?mode=byok&source=derived_provider")

    assert str(console.byok_workspace_id) in page.text
    assert str(console.drifting_workspace_id) not in page.text  # platform_managed by override


def test_an_unknown_filter_value_is_a_readable_400(console: Console) -> None:
    page = _client(console, console.admin_token).get(f"/console/orgs/{console.org_id}?mode=BYOK")

    assert page.status_code == 400
    assert "is not one of platform_managed, byok, disabled" in page.text


def test_no_secret_value_reaches_a_page(console: Console) -> None:
    client = _client(console, console.admin_token)
    pages = [
        f"/console/orgs/{console.org_id}",
        f"/console/workspaces/{console.drifting_workspace_id}",
        "/console/audit",
    ]
    for url in pages:
        text = client.get(url).text
        assert "sk-ant-never-shown" not in text
        assert "usage-token-never-shown" not in text


def test_the_fleet_pages_by_cursor_and_keeps_the_filters(console: Console) -> None:
    org = admin.create_org(console.context, "big-org")
    created = {
        admin.create_workspace(console.context, org.id, model="claude-opus-4-7").id
        for _ in range(FLEET_PAGE_SIZE + 2)
    }
    client = _client(console, console.admin_token)

    first = client.get(f"/console/orgs/{org.id}?mode=byok")
    next_link = re.search(r'<a rel="next" href="([^"]+)"', first.text)
    assert next_link is not None
    second = client.get(next_link.group(1).replace("&amp;", "&"))

    first_ids = set(re.findall(r'data-workspace-id="([0-9a-f-]{36})"', first.text))
    second_ids = set(re.findall(r'data-workspace-id="([0-9a-f-]{36})"', second.text))
    assert len(first_ids) == FLEET_PAGE_SIZE
    assert len(second_ids) == 2
    assert {UUID(text) for text in first_ids | second_ids} == created
    assert "mode=byok" in next_link.group(1)
    assert 'rel="next"' not in second.text


def test_the_audit_trail_is_newest_first_and_filters_by_workspace(console: Console) -> None:
    client = _client(console, console.admin_token)

    page = client.get(f"/console/audit?workspace={console.drifting_workspace_id}")

    actions = re.findall(r"<td><code>([a-z_.]+)</code></td>", page.text)
    assert actions == [
        "workspace.override_set",
        "workspace.provisioned",
        "workspace.created",
    ]


def test_a_tenant_token_sees_only_its_orgs_audit_entries(console: Console) -> None:
    page = _client(console, console.viewer_token).get("/console/audit")

    assert "demo.seeded" not in page.text  # the deployment's entry, not the org's
    assert "workspace.override_set" in page.text


def test_a_garbled_cursor_is_a_readable_400(console: Console) -> None:
    client = _client(console, console.admin_token)

    assert client.get("/console/?after=not-a-cursor").status_code == 400
    assert client.get("/console/audit?before=abc").status_code == 400


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("byok", "byok"),
        ("  BYOK ", "byok (stored as '  BYOK ')"),
        ("byokk", "'byokk' is not a mode: ignored"),
        ("", "empty: ignored"),
        (None, "none: workspaces inherit from their model"),
    ],
)
def test_the_org_default_reads_as_an_operator_needs_it(raw: str | None, words: str) -> None:
    assert views.org_default_words(raw, None) == words


# --- scopes ----------------------------------------------------------------------------------


def test_a_viewer_sees_the_trace_but_no_override_controls(console: Console) -> None:
    page = _client(console, console.viewer_token).get(
        f"/console/workspaces/{console.byok_workspace_id}"
    )

    assert page.status_code == 200
    assert 'data-rung="derived_provider" data-status="decided"' in page.text
    assert "Set override" not in page.text
    assert "Clear override" not in page.text


def test_a_viewer_cannot_change_an_override_even_by_posting(console: Console) -> None:
    client = _client(console, console.viewer_token)

    response = client.post(
        f"/console/workspaces/{console.byok_workspace_id}/override/set",
        data={"mode": "disabled", "version": _version(console, console.byok_workspace_id)},
        headers={"Origin": ORIGIN},
    )

    assert response.status_code == 403
    assert admin.get_workspace(console.context, console.byok_workspace_id).override is None


def test_a_viewer_gets_no_confirmation_page_either(console: Console) -> None:
    client = _client(console, console.viewer_token)

    response = client.get(f"/console/workspaces/{console.byok_workspace_id}/override/set?mode=byok")

    assert response.status_code == 403


def test_another_orgs_pages_are_not_found_for_a_tenant_token(console: Console) -> None:
    client = _client(console, console.viewer_token)

    assert client.get(f"/console/orgs/{console.other_org_id}").status_code == 404
    assert client.get(f"/console/audit?org={console.other_org_id}").status_code == 404
    assert client.get("/console/").text.count("/console/orgs/") == 1


# --- the browser journey ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(console: Console) -> Iterator[str]:
    with served_app(console.app) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def test_an_operator_logs_in_filters_reads_a_trace_and_changes_an_override(
    console: Console, served: str, browser: Browser, capsys: pytest.CaptureFixture[str]
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})

    # Log in with a token.
    page.goto(f"{served}/console/")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.get_by_label("API token").fill(console.admin_token)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Organizations")).to_be_visible()

    # The fleet table of the org, then filtered by mode.
    page.get_by_role("link", name=HOSTILE_NAME).click()
    expect(page.locator("table.fleet")).to_contain_text("journey-workspace")
    page.get_by_label("Mode").select_option("platform_managed")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"mode=platform_managed"))
    expect(page.locator("table.fleet")).to_contain_text("drifting")
    expect(page.locator("table.fleet")).not_to_contain_text("journey-workspace")
    page.get_by_role("link", name="Clear filters").click()

    # Open the trace: four rungs in order, the derived provider decided.
    page.get_by_role("link", name="journey-workspace").click()
    rungs = page.locator("ol.ladder > li")
    expect(rungs).to_have_count(4)
    assert rungs.evaluate_all("items => items.map(item => item.dataset.rung)") == [
        "workspace_override",
        "org_default",
        "derived_provider",
        "deployment_default",
    ]
    expect(page.locator("li.rung-decider")).to_have_attribute("data-rung", "derived_provider")
    expect(page.get_by_test_id("decided-mode")).to_have_text("byok")

    # Set an override, through the confirmation step.
    page.get_by_label("Set this workspace's mode to").select_option("disabled")
    page.get_by_role("button", name="Set override…").click()
    expect(page.get_by_role("heading", name="Set the override to disabled?")).to_be_visible()
    page.get_by_role("button", name="Yes, set disabled").click()
    expect(page.get_by_role("status")).to_contain_text("Override set.")
    expect(page.get_by_test_id("decided-mode")).to_have_text("disabled")
    expect(page.locator("li.rung-decider")).to_have_attribute("data-rung", "workspace_override")
    newest = page.locator("table.audit tbody tr").first
    expect(newest).to_contain_text("workspace.override_set")
    expect(newest).to_contain_text("disabled")

    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    screenshot = SCREENSHOT_DIR / "console-workspace-override.png"
    page.screenshot(path=str(screenshot), full_page=True)
    with capsys.disabled():
        print(f"\nconsole screenshot: {screenshot}")

    # The audit trail page shows it too; then clear the override again.
    page.get_by_role("link", name="Audit trail").click()
    expect(page.locator("table.audit tbody tr").first).to_contain_text("workspace.override_set")
    page.go_back()
    page.get_by_role("button", name="Clear override…").click()
    page.get_by_role("button", name="Yes, clear the override").click()
    expect(page.get_by_test_id("decided-mode")).to_have_text("byok")
    expect(page.get_by_test_id("stored-override")).to_have_text("none (inherit)")
    expect(page.locator("table.audit tbody tr").first).to_contain_text("workspace.override_cleared")
    page.close()


def test_a_viewer_in_the_browser_has_no_override_controls(
    console: Console, served: str, browser: Browser
) -> None:
    page = browser.new_page()
    page.goto(f"{served}/console/login")
    page.get_by_label("API token").fill(console.viewer_token)
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{served}/console/workspaces/{console.byok_workspace_id}")

    expect(page.locator("ol.ladder > li")).to_have_count(4)
    expect(page.get_by_role("button", name="Set override…")).to_have_count(0)
    expect(page.get_by_role("button", name="Clear override…")).to_have_count(0)
    page.close()


def test_a_bad_token_is_refused_in_the_browser(served: str, browser: Browser) -> None:
    page = browser.new_page()
    page.goto(f"{served}/console/login")
    page.get_by_label("API token").fill("llmb_wrong")
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("alert")).to_have_text("That token was not accepted.")
    expect(page.get_by_label("API token")).to_have_value("")
    page.close()


def _version(console: Console, workspace_id: UUID) -> str:
    """The version a confirmation page would carry for the workspace's current decision."""
    version = read_decision(console.context, workspace_id).version
    assert version is not None
    return decision_etag(version)


def _fleet_row(html: str, workspace_id: UUID) -> str:
    match = re.search(rf'<tr data-workspace-id="{workspace_id}">.*?</tr>', html, re.DOTALL)
    assert match is not None, f"workspace {workspace_id} is not in the fleet table"
    return match.group(0)
