"""The what-if job page as something to act on: the proposal shown and diffed, the per-org
breakdown, sample links that open today's and the proposed trace side by side (read access to
the workspace checked), and the viewer's empty list saying nothing is visible to its token.

Fast tests use FastAPI's TestClient; the browser test drives Debian's Chromium through a
proposal that switches disabled workspaces back on and saves screenshots under
``test-output/ui/``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, expect
from tests.ui.browsing import SCREENSHOT_DIR, chromium, served_app

from llmbilling import CONTRACT_POLICY, ResolutionInput, built_in_registry, compile_policy
from llmbilling.api.app import create_app
from llmbilling.api.console.rendering import environment
from llmbilling.config.settings import Settings
from llmbilling.core.whatif import Configuration, DangerClass, WhatIfTally, compare
from llmbilling.service import admin
from llmbilling.service.context import ServiceContext
from llmbilling.service.tokens import create_token
from llmbilling.service.whatif_jobs import JobState, WhatIfJob
from llmbilling.service.whatif_report import ORGS_SHOWN, proposal_of, report_document, worst_orgs
from llmbilling.store.crypto import KeyRing

ORIGIN = "http://testserver"
# Without the override rung, the switched-off workspaces follow their org default again.
NO_OVERRIDE_RUNG = "rungs: [org_default, derived_provider, deployment_default]\n"
CURRENT = Configuration(CONTRACT_POLICY, built_in_registry())
PROPOSED = Configuration(
    compile_policy({"rungs": ["org_default", "derived_provider", "deployment_default"]}, "p"),
    built_in_registry(),
)
WOKEN = ResolutionInput(
    workspace_id="ws", override="disabled", org_default="platform_managed", runtime="claude-code",
    model="kimi-for-coding", proxy_configured=True,
)  # fmt: skip
STEADY = ResolutionInput(
    workspace_id="ws", org_default="platform_managed", runtime="claude-code",
    model="kimi-for-coding", proxy_configured=True,
)  # fmt: skip


@dataclass(frozen=True)
class ReportConsole:
    app: FastAPI
    context: ServiceContext
    org_id: UUID
    disabled_ids: tuple[UUID, ...]
    foreign_workspace_id: UUID
    org_admin_token: str
    admin_token: str
    lonely_viewer_token: str


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReportConsole]:
    folder = tmp_path_factory.mktemp("whatif-reports")
    settings = Settings(
        database_url=f"sqlite:///{folder / 'console.sqlite3'}",
        secret_keys=KeyRing.new_key_text(1),
        MOLECULE_LLM_BASE_URL="https://proxy.example/v1",
        MOLECULE_LLM_USAGE_TOKEN="usage-token-never-shown",
    )
    context = ServiceContext.from_settings(settings)
    org = admin.create_org(context, "switched-off-org")
    admin.set_org_default(context, org.id, "platform_managed")
    disabled = tuple(
        admin.create_workspace(
            context, org.id, runtime="claude-code", model="kimi-for-coding", override="disabled"
        ).id
        for _ in range(3)
    )
    admin.create_workspace(context, org.id, runtime="claude-code", model="kimi-for-coding")
    other = admin.create_org(context, "someone-else")
    foreign = admin.create_workspace(context, other.id, model="kimi-for-coding").id
    lonely = admin.create_org(context, "no-jobs-here")
    yield ReportConsole(
        app=create_app(settings, context=context),
        context=context,
        org_id=org.id,
        disabled_ids=disabled,
        foreign_workspace_id=foreign,
        org_admin_token=create_token(context, scope="org_admin", org_id=org.id).token,
        admin_token=create_token(context, scope="admin").token,
        lonely_viewer_token=create_token(context, scope="viewer", org_id=lonely.id).token,
    )
    context.close()


def signed_in(console: ReportConsole, token: str) -> TestClient:
    client = TestClient(console.app, base_url=ORIGIN, follow_redirects=False)
    response = client.post("/console/login", data={"token": token}, headers={"Origin": ORIGIN})
    assert response.status_code == 303
    return client


def finished_job(client: TestClient, org_id: UUID) -> tuple[str, str]:
    """Start the proposal for ``org_id``; its location and page once it has ended."""
    started = client.post(
        "/console/whatif",
        data={"policy": NO_OVERRIDE_RUNG, "registry": "", "org": str(org_id)},
        headers={"Origin": ORIGIN},
    )
    assert started.status_code == 303, started.text
    location: str = started.headers["location"]
    deadline = time.monotonic() + 60  # a generous bound, not a timing assertion
    while time.monotonic() < deadline:
        page = client.get(location)
        assert page.status_code == 200
        if 'http-equiv="refresh"' not in page.text:
            return location, page.text
        time.sleep(0.05)
    raise AssertionError(f"{location} did not finish")


@pytest.fixture(scope="module")
def job(console: ReportConsole) -> tuple[str, str]:
    return finished_job(signed_in(console, console.org_admin_token), console.org_id)


def test_the_job_page_counts_the_workspaces_that_would_start_paying(
    job: tuple[str, str],
) -> None:
    _, page = job
    assert re.search(
        r'data-danger="starts_paying">\s*<td>starts_paying</td>\s*<td class="num">3<', page
    )


def test_the_job_page_shows_the_policy_diff_and_both_documents(job: tuple[str, str]) -> None:
    _, page = job
    assert '<span class="diff-line diff-del">-- workspace_override</span>' in page
    assert "Current policy (YAML)" in page
    assert "Proposed policy (YAML)" in page
    assert re.search(r"Registry\s*<span class=\"subtle\">\(unchanged\)</span>", page)


def test_the_job_page_breaks_the_report_down_per_org(
    console: ReportConsole, job: tuple[str, str]
) -> None:
    _, page = job
    row = re.search(rf'<tr data-org="{console.org_id}">(.*?)</tr>', page, re.S)
    assert row is not None
    cells = re.findall(r'<td class="num[^"]*">([\d,]+)</td>', row.group(1))
    # workspaces, changed, then each danger class in order (starts_paying last).
    assert cells[:2] == ["4", "3"]
    assert cells[-1] == "3"


def test_a_sample_link_opens_both_traces_side_by_side(
    console: ReportConsole, job: tuple[str, str]
) -> None:
    location, page = job
    client = signed_in(console, console.org_admin_token)
    sample = f"{location}/samples/{console.disabled_ids[0]}"
    assert f'href="{sample}"' in page
    side_by_side = client.get(sample)
    assert side_by_side.status_code == 200
    text = side_by_side.text
    assert 'data-testid="current-mode">disabled<' in text
    assert 'data-testid="proposed-mode">platform_managed<' in text
    assert 'aria-label="Current trace"' in text
    assert 'aria-label="Proposed trace"' in text


@pytest.mark.parametrize(
    "who", ["lonely_viewer_token", "foreign_workspace"], ids=["stranger", "foreign-workspace"]
)
def test_a_sample_the_reader_may_not_read_is_not_found(
    console: ReportConsole, job: tuple[str, str], who: str
) -> None:
    location, _ = job
    if who == "foreign_workspace":
        client = signed_in(console, console.org_admin_token)
        path = f"{location}/samples/{console.foreign_workspace_id}"
    else:
        client = signed_in(console, console.lonely_viewer_token)
        path = f"{location}/samples/{console.disabled_ids[0]}"
    assert client.get(path).status_code == 404


@pytest.mark.parametrize("workspace_id", ["not-a-uuid", "00000000-0000-4000-8000-000000000000"])
def test_a_sample_of_no_workspace_is_not_found(
    console: ReportConsole, job: tuple[str, str], workspace_id: str
) -> None:
    location, _ = job
    client = signed_in(console, console.admin_token)
    assert client.get(f"{location}/samples/{workspace_id}").status_code == 404


def test_report_html_carries_the_diff_and_the_per_org_table(
    console: ReportConsole, job: tuple[str, str]
) -> None:
    location, _ = job
    report = signed_in(console, console.org_admin_token).get(f"{location}/report.html")
    assert report.status_code == 200
    assert '<span class="del">-- workspace_override' in report.text
    assert f"<td><code>{console.org_id}</code></td><td>4</td><td>3</td>" in report.text


def test_a_viewer_with_no_visible_job_is_told_none_is_visible_to_its_token(
    console: ReportConsole, job: tuple[str, str]
) -> None:
    page = signed_in(console, console.lonely_viewer_token).get("/console/whatif").text
    assert "none visible to this token" in page
    assert "/console/whatif/" not in page.split("Recent what-ifs")[1]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def test_an_operator_reads_the_diff_the_orgs_and_a_sample_in_the_browser(
    console: ReportConsole, browser: Browser, capsys: pytest.CaptureFixture[str]
) -> None:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    shots = [
        SCREENSHOT_DIR / name
        for name in (
            "console-whatif-diff-and-orgs.png",
            "console-whatif-sample-side-by-side.png",
            "console-whatif-empty-viewer.png",
        )
    ]
    with served_app(console.app) as base_url:
        page = browser.new_page(viewport={"width": 1200, "height": 1100})
        page.goto(f"{base_url}/console/login")
        page.fill("input[name=token]", console.org_admin_token)
        page.click("button[type=submit]")
        page.goto(f"{base_url}/console/whatif")
        page.fill("textarea[name=policy]", NO_OVERRIDE_RUNG)
        page.click("text=Run what-if")
        danger = page.locator('tr[data-danger="starts_paying"]')
        expect(danger).to_contain_text("3", timeout=60_000)
        expect(page.locator('pre.diff[aria-label="policy diff"] .diff-del')).to_have_text(
            "-- workspace_override"
        )
        expect(page.locator(f'tr[data-org="{console.org_id}"]')).to_be_visible()
        page.screenshot(path=str(shots[0]), full_page=True)
        danger.locator("a.sample-link").first.click()
        current, proposed = page.locator(".trace-side").all()
        expect(current.locator(".mode")).to_have_text("disabled")
        expect(proposed.locator(".mode")).to_have_text("platform_managed")
        current_box, proposed_box = current.bounding_box(), proposed.bounding_box()
        assert current_box is not None
        assert proposed_box is not None
        # Side by side: the same row, proposed to the right.
        assert proposed_box["x"] > current_box["x"] + current_box["width"] - 1
        assert abs(proposed_box["y"] - current_box["y"]) < 1
        page.screenshot(path=str(shots[1]), full_page=True)
        page.close()
        viewer = browser.new_page(viewport={"width": 1000, "height": 600})
        viewer.goto(f"{base_url}/console/login")
        viewer.fill("input[name=token]", console.lonely_viewer_token)
        viewer.click("button[type=submit]")
        viewer.goto(f"{base_url}/console/whatif")
        expect(viewer.locator("p.empty")).to_contain_text("none visible to this token")
        viewer.screenshot(path=str(shots[2]), full_page=True)
        viewer.close()
    with capsys.disabled():
        for shot in shots:
            print(f"\nscreenshot: {shot}")
    assert all(shot.stat().st_size > 0 for shot in shots)


def test_a_big_fleets_page_separates_thousands_and_lists_the_worst_orgs_first() -> None:
    tally = WhatIfTally(CURRENT, PROPOSED)
    woken = compare(WOKEN, CURRENT, PROPOSED).change
    steady = compare(STEADY, CURRENT, PROPOSED).change
    for index in range(ORGS_SHOWN + 50):
        tally.add(f"org-{index:04d}", f"ws-{index}", steady)
    for index in range(12_345):
        tally.add("org-big", f"woken-{index}", woken)
    report = tally.report()
    document = report_document(report, proposal_of(CURRENT, PROPOSED))
    orgs, more = worst_orgs(document)
    job = WhatIfJob(
        id=uuid4(), org_id=None, state=JobState.SUCCEEDED, done=report.total,
        total=report.total, created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )  # fmt: skip
    page = environment().get_template("console_whatif_job.html").render(
        principal=None, job=job, running=False, document=document, chart="", diffs=[],
        danger_names=[danger.value for danger in DangerClass], orgs=orgs, more_orgs=more,
    )  # fmt: skip
    assert "12,495 of 12,495 workspaces" in page
    assert "12,345 of 12,495 workspaces would change" in page
    assert 'datetime="2026-01-02T03:04:05+00:00"' in page
    assert "the first 100 of 151" in page
    assert "51 more orgs" in page
    assert page.index('data-org="org-big"') < page.index('data-org="org-0000"')
