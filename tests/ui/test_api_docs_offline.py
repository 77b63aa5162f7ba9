"""``/docs`` and ``/redoc`` render in real Chromium with every request to another origin
refused: their assets are packaged, their scripts load from the origin (no inline script),
and their Content-Security-Policy is never violated. Screenshots go to ``test-output/ui/``."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, expect
from tests.ui.browsing import SCREENSHOT_DIR, chromium, served_app

from llmbilling.api.app import create_app
from llmbilling.api.docs_pages import DOCS_POLICY
from llmbilling.config.settings import Settings
from llmbilling.service.context import ServiceContext
from llmbilling.store.crypto import KeyRing

# A summary of the API's own operations, as each UI shows it.
OPERATION_SUMMARY = "The workspace's decision record, with its trace"
_RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("docs")
    settings = Settings(
        database_url=f"sqlite:///{folder / 'docs.sqlite3'}", secret_keys=KeyRing.new_key_text(1)
    )
    context = ServiceContext.from_settings(settings)
    try:
        with served_app(create_app(settings, context=context)) as base_url:
            yield base_url
    finally:
        context.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


class Offline:
    """A page whose requests to anything but 127.0.0.1 are refused and remembered, and whose
    console's CSP complaints are remembered."""

    def __init__(self, browser: Browser) -> None:
        self.page: Page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.refused: list[str] = []
        self.console_errors: list[str] = []
        self.page.add_init_script(_RECORD_VIOLATIONS)
        self.page.route("**/*", self._only_localhost)
        self.page.on("console", self._remember)

    def _only_localhost(self, route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            self.refused.append(route.request.url)
            route.abort()

    def _remember(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def violations(self) -> list[str]:
        found = self.page.evaluate("window.__cspViolations")
        csp_messages = [text for text in self.console_errors if "Content Security Policy" in text]
        return [*found, *csp_messages]


@pytest.mark.parametrize(
    ("path", "rendered"),
    [
        ("/docs", ".opblock-summary-description"),
        ("/redoc", "[role=menuitem], li[data-item-id] label"),
    ],
)
def test_the_api_docs_render_offline_within_their_content_security_policy(
    served: str, browser: Browser, path: str, rendered: str
) -> None:
    offline = Offline(browser)

    response = offline.page.goto(f"{served}{path}")
    expect(offline.page.locator(rendered).filter(has_text=OPERATION_SUMMARY).first).to_be_visible(
        timeout=30_000
    )
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    offline.page.screenshot(path=str(SCREENSHOT_DIR / f"api_docs{path.replace('/', '_')}.png"))

    assert response is not None
    assert response.headers["content-security-policy"] == DOCS_POLICY
    assert offline.refused == []
    assert offline.violations() == []
    offline.page.close()


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_a_docs_page_holds_no_inline_script_and_names_no_other_origin(
    served: str, path: str
) -> None:
    with urllib.request.urlopen(f"{served}{path}") as response:
        html = response.read().decode()

    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts
    assert all('src="/docs-assets/' in tag and not body for tag, body in scripts)
    assert "://" not in html


def test_an_unknown_docs_asset_is_a_404_problem(served: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{served}/docs-assets/..%2Fapp.py")

    assert refused.value.code == 404
    assert json.loads(refused.value.read())["code"] == "NOT_FOUND"
