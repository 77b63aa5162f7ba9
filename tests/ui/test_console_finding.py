"""Finding things on a big fleet in the console, and the small things a user notices.

Search (an exact id jumps to its page; a name matches its start, ignoring case; a tenant's
token finds nothing outside its org), the org list's keyset pages, breadcrumbs with the org's
name, one separator for counts, UTC on every timestamp, the favicon, ``/`` → the console, and
no sideways scrolling on a 375 px phone. Browser tests drive Debian's Chromium and save
screenshots under ``test-output/ui/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, expect
from tests.ui.browsing import chromium, log_in, save_screenshot, served_app

from llmbilling.api.app import create_app
from llmbilling.api.console import rendering
from llmbilling.api.console.routes import ORG_PAGE_SIZE
from llmbilling.config.settings import Settings
from llmbilling.service import admin
from llmbilling.service.context import ServiceContext
from llmbilling.service.provision import provision_workspace
from llmbilling.service.tokens import create_token
from llmbilling.store.crypto import KeyRing

ORIGIN = "http://testserver"
FILLER_ORGS = ORG_PAGE_SIZE + 7
TEMPLATES = Path(rendering.TEMPLATES_DIR)


@dataclass(frozen=True)
class Fleet:
    app: FastAPI
    context: ServiceContext
    acme_id: UUID
    globex_id: UUID
    arm_id: UUID
    globex_robot_id: UUID
    admin_token: str
    acme_viewer_token: str


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    folder = tmp_path_factory.mktemp("finding")
    settings = Settings(
        database_url=f"sqlite:///{folder / 'console.sqlite3'}",
        secret_keys=KeyRing.new_key_text(1),
        MOLECULE_LLM_BASE_URL="https://proxy.example/v1",
        MOLECULE_LLM_USAGE_TOKEN="usage-token",
    )
    context = ServiceContext.from_settings(settings)
    acme = admin.create_org(context, "Acme Robotics")
    arm = admin.create_workspace(
        context, acme.id, model="platform/claude-opus-4-7", name="Robot-Arm-with-a-rather-long-name"
    )
    admin.create_workspace(context, acme.id, model="gpt-5.5", name="robot-leg")
    admin.create_workspace(context, acme.id, model="gpt-5.5", name="vacuum")
    provision_workspace(context, arm.id)
    admin.create_org(context, "acme cloud")
    globex = admin.create_org(context, "Globex")
    globex_robot = admin.create_workspace(context, globex.id, model="gpt-5.5", name="robot-globex")
    for number in range(FILLER_ORGS):
        admin.create_org(context, f"filler-{number:03d}")
    yield Fleet(
        app=create_app(settings, context=context),
        context=context,
        acme_id=acme.id,
        globex_id=globex.id,
        arm_id=arm.id,
        globex_robot_id=globex_robot.id,
        admin_token=create_token(context, scope="admin").token,
        acme_viewer_token=create_token(context, scope="viewer", org_id=acme.id).token,
    )
    context.close()


def _client(fleet: Fleet, token: str | None = None) -> TestClient:
    client = TestClient(fleet.app, base_url=ORIGIN, follow_redirects=False)
    if token is not None:
        response = client.post("/console/login", data={"token": token}, headers={"Origin": ORIGIN})
        assert response.status_code == 303
    return client


# --- search ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["org", "workspace"])
def test_an_exact_id_goes_straight_to_its_page(fleet: Fleet, kind: str) -> None:
    target = fleet.acme_id if kind == "org" else fleet.arm_id

    response = _client(fleet, fleet.admin_token).get("/console/search", params={"q": f" {target} "})

    assert response.status_code == 303
    assert response.headers["location"] == f"/console/{kind}s/{target}"


@pytest.mark.parametrize(
    ("text", "orgs", "workspaces"),
    [
        ("acme", ["Acme Robotics", "acme cloud"], []),
        ("ROBOT", [], ["robot-globex", "robot-leg", "Robot-Arm-with-a-rather-long-name"]),
        ("robot-l", [], ["robot-leg"]),
        ("botics", [], []),  # a name matches from its start
        ("100%", [], []),  # LIKE wildcards are plain characters
        ("filler_00", [], []),
    ],
)
def test_a_name_matches_orgs_and_workspaces_by_its_start_ignoring_case(
    fleet: Fleet, text: str, orgs: list[str], workspaces: list[str]
) -> None:
    html = _client(fleet, fleet.admin_token).get("/console/search", params={"q": text}).text

    assert sorted(_cells(html, "org-results")) == sorted(orgs)
    assert sorted(_cells(html, "workspace-results")) == sorted(workspaces)


def test_a_tenant_token_finds_nothing_outside_its_org(fleet: Fleet) -> None:
    client = _client(fleet, fleet.acme_viewer_token)

    by_name = client.get("/console/search", params={"q": "robot"}).text
    by_foreign_id = client.get("/console/search", params={"q": str(fleet.globex_robot_id)})
    by_foreign_org = client.get("/console/search", params={"q": str(fleet.globex_id)})
    by_other_org_name = client.get("/console/search", params={"q": "glob"}).text

    assert sorted(_cells(by_name, "workspace-results")) == [
        "Robot-Arm-with-a-rather-long-name",
        "robot-leg",
    ]
    assert by_foreign_id.status_code == by_foreign_org.status_code == 200
    assert "No organization or workspace this token may see" in by_foreign_id.text
    assert "No organization or workspace this token may see" in by_foreign_org.text
    assert _cells(by_other_org_name, "org-results") == []


def _cells(html: str, test_id: str) -> list[str]:
    """The link texts of the first column of the results table ``test_id``."""
    table = re.search(rf'<table[^>]*data-testid="{test_id}".*?</table>', html, re.DOTALL)
    if table is None:
        return []
    return re.findall(r"<tr><td><a [^>]*>([^<]*)</a>", table.group(0))


# --- small things ----------------------------------------------------------------------------


def test_the_bare_host_redirects_to_the_console(fleet: Fleet) -> None:
    response = _client(fleet).get("/")

    assert response.status_code == 307
    assert response.headers["location"] == "/console/"


def test_the_favicon_is_served_where_browsers_look_and_linked_from_every_page(
    fleet: Fleet,
) -> None:
    client = _client(fleet)

    ico = client.get("/favicon.ico")
    svg = client.get("/console/static/favicon.svg")
    login = client.get("/console/login")

    assert ico.status_code == 308
    assert ico.headers["location"] == "/console/static/favicon.svg"
    assert svg.status_code == 200
    assert svg.headers["content-type"] == "image/svg+xml"
    assert svg.content.startswith(b"<svg")
    assert '<link rel="icon" type="image/svg+xml" href="/console/static/favicon.svg">' in login.text


def test_the_api_is_unaffected_by_the_redirect(fleet: Fleet) -> None:
    response = _client(fleet).get("/v1/orgs")

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("count", "shown"), [(0, "0"), (999, "999"), (1234, "1,234"), (10**6, "1,000,000")]
)
def test_counts_use_one_thousands_separator(count: int, shown: str) -> None:
    assert rendering.environment().from_string("{{ n | thousands }}").render(n=count) == shown


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 12, 2, 14, 5, 9, 123456),  # naive, as SQLite hands it back: UTC
        datetime(2026, 12, 2, 14, 5, 9, tzinfo=UTC),
        datetime(2026, 12, 2, 15, 5, 9, tzinfo=timezone(timedelta(hours=1))),
    ],
)
def test_a_timestamp_says_utc_and_carries_its_iso_8601_instant(value: datetime) -> None:
    html = rendering.environment().from_string("{{ t | timestamp }}").render(t=value)

    assert html == '<time datetime="2026-12-02T14:05:09+00:00">2026-12-02 14:05:09 UTC</time>'


# Pages whose counts and timestamps this suite pins (the what-if pages are pinned by their own).
PINNED_TEMPLATES = [
    "console_orgs.html",
    "console_fleet.html",
    "console_workspace.html",
    "console_audit_table.html",
    "console_search.html",
    "console_org_default.html",
]


@pytest.mark.parametrize("template", PINNED_TEMPLATES)
def test_every_count_and_timestamp_goes_through_its_filter(template: str) -> None:
    text = (TEMPLATES / template).read_text()
    expressions = re.findall(r"{{(.*?)}}", text)

    for expression in expressions:
        if re.search(r"_count\b|\blimit\b", expression):
            assert "| thousands" in expression, f"{template}: {expression}"
        if re.search(r"_at\b", expression):
            assert "| timestamp" in expression, f"{template}: {expression}"


def test_breadcrumbs_name_the_org_on_the_workspace_and_org_pages(fleet: Fleet) -> None:
    client = _client(fleet, fleet.admin_token)

    workspace = client.get(f"/console/workspaces/{fleet.arm_id}").text
    org = client.get(f"/console/orgs/{fleet.acme_id}").text

    assert _crumbs(workspace) == ["Console", "Acme Robotics", "Robot-Arm-with-a-rather-long-name"]
    assert _crumbs(org) == ["Console", "Acme Robotics"]


def _crumbs(html: str) -> list[str]:
    nav = re.search(r'<nav class="crumbs" aria-label="Breadcrumb">(.*?)</nav>', html, re.DOTALL)
    assert nav is not None
    pattern = r'<(?:a href="[^"]*"|span aria-current="page")>([^<]+)</(?:a|span)>'
    return [part.strip() for part in re.findall(pattern, nav.group(1))]


# --- in the browser --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(fleet: Fleet) -> Iterator[str]:
    with served_app(fleet.app) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def test_the_search_box_finds_by_name_and_jumps_by_id_in_the_browser(
    fleet: Fleet, served: str, browser: Browser
) -> None:
    page = log_in(browser, served, fleet.admin_token)
    box = page.get_by_role("searchbox", name="Find an org or workspace")

    box.fill("robot")
    box.press("Enter")
    expect(page.get_by_role("heading", name="Find “robot”")).to_be_visible()
    expect(page.get_by_test_id("workspace-results")).to_contain_text("robot-globex")
    save_screenshot(page, "console-search-by-name.png")

    page.get_by_role("searchbox", name="Find an org or workspace").fill(str(fleet.arm_id))
    page.get_by_role("button", name="Find").click()
    expect(page).to_have_url(re.compile(rf"/console/workspaces/{fleet.arm_id}$"))
    expect(page.get_by_test_id("decided-mode")).to_be_visible()
    page.close()


def test_a_tenant_searching_in_the_browser_sees_only_its_org(
    fleet: Fleet, served: str, browser: Browser
) -> None:
    page = log_in(browser, served, fleet.acme_viewer_token)
    box = page.get_by_role("searchbox", name="Find an org or workspace")

    box.fill("robot")
    box.press("Enter")
    results = page.get_by_test_id("workspace-results")
    expect(results).to_contain_text("robot-leg")
    expect(results).not_to_contain_text("robot-globex")
    expect(page.get_by_text("in this token's organization only")).to_be_visible()
    save_screenshot(page, "console-search-tenant.png")
    page.close()


def test_the_org_list_pages_through_every_org_once_with_counts(
    fleet: Fleet, served: str, browser: Browser
) -> None:
    page = log_in(browser, served, fleet.admin_token)
    expect(page.locator("table.grid tbody tr").filter(has_text="Acme Robotics")).to_contain_text(
        "3"
    )

    seen: list[str] = []
    pages = 0
    while True:
        pages += 1
        seen.extend(page.locator("table.grid tbody tr td:first-child").all_inner_texts())
        following = page.get_by_role("link", name="Next page")
        if following.count() == 0:
            break
        following.click()
        expect(page.get_by_role("link", name="First page")).to_be_visible()

    assert pages == 2
    assert len(seen) == len(set(seen)) == FILLER_ORGS + 3
    assert seen == sorted(seen)  # (name, id) order: SQLite compares bytes, as Python does
    save_screenshot(page, "console-orgs-last-page.png")
    page.close()


@pytest.mark.parametrize(
    "path",
    ["/console/", "/console/orgs/{acme}", "/console/workspaces/{arm}", "/console/search?q=robot"],
    ids=["orgs", "fleet", "workspace", "search"],
)
def test_no_page_scrolls_sideways_on_a_375_px_phone(
    fleet: Fleet, served: str, browser: Browser, path: str
) -> None:
    page = log_in(browser, served, fleet.admin_token, width=375)

    page.goto(served + path.format(acme=fleet.acme_id, arm=fleet.arm_id))

    overflow = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert overflow[0] <= overflow[1], f"page is {overflow[0]} px wide in a {overflow[1]} px view"
    if "orgs/" in path:
        save_screenshot(page, "console-fleet-375px.png")
    page.close()
