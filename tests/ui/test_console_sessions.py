"""Console sessions in a real browser: the app under uvicorn, Debian's Chromium headless.

Two browser contexts stand for two machines: a session cookie copied from one into the other
works only while the session lives; after logout in the first, the copy is refused too. The
cookie is a session secret scripts cannot read, never the API token. Without
/usr/bin/chromium these tests skip, unless ``CI=true``: then they fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, BrowserContext, Cookie, Page, expect
from tests.ui.browsing import chromium, served_app

from llmbilling.api.app import create_app
from llmbilling.api.console.session import SESSION_COOKIE, ConsoleSessions, LoginThrottle
from llmbilling.config.settings import Settings
from llmbilling.service.context import ServiceContext
from llmbilling.service.tokens import create_token
from llmbilling.store.crypto import KeyRing

LOGIN_FAILURES = 3


@dataclass(frozen=True)
class Served:
    app: FastAPI
    base_url: str
    token: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("console-sessions")
    settings = Settings(
        database_url=f"sqlite:///{folder / 'console.sqlite3'}",
        secret_keys=KeyRing.new_key_text(1),
    )
    context = ServiceContext.from_settings(settings)
    app = create_app(settings, context=context)
    token = create_token(context, scope="admin").token
    try:
        with served_app(app) as base_url:
            yield Served(app, base_url, token)
    finally:
        context.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def _logged_in(browser: Browser, served: Served) -> tuple[BrowserContext, Page]:
    machine = browser.new_context()
    page = machine.new_page()
    page.goto(f"{served.base_url}/console/login")
    page.get_by_label("API token").fill(served.token)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    return machine, page


def _session_cookie(machine: BrowserContext) -> Cookie:
    (cookie,) = [cookie for cookie in machine.cookies() if cookie.get("name") == SESSION_COOKIE]
    return cookie


def test_a_copied_cookie_works_until_logout_and_is_refused_after_it(
    browser: Browser, served: Served
) -> None:
    first, first_page = _logged_in(browser, served)
    second = browser.new_context()
    cookie = _session_cookie(first)
    # Another machine given the same cookie: same name, value, host and path.
    second.add_cookies(
        [
            {
                "name": SESSION_COOKIE,
                "value": cookie.get("value", ""),
                "domain": cookie.get("domain", ""),
                "path": cookie.get("path", "/"),
            }
        ]
    )
    copy = second.new_page()
    copy.goto(f"{served.base_url}/console/")
    expect(copy.get_by_role("button", name="Log out")).to_be_visible()

    first_page.get_by_role("button", name="Log out").click()
    expect(first_page.get_by_role("button", name="Log in")).to_be_visible()
    copy.goto(f"{served.base_url}/console/")

    expect(copy).to_have_url(f"{served.base_url}/console/login?next=%2Fconsole%2F")
    expect(copy.get_by_role("button", name="Log in")).to_be_visible()
    first.close()
    second.close()


def test_the_session_cookie_is_a_secret_scripts_cannot_read_and_never_the_token(
    browser: Browser, served: Served
) -> None:
    machine, page = _logged_in(browser, served)

    cookie = _session_cookie(machine)
    assert cookie.get("httpOnly") is True
    assert cookie.get("sameSite") == "Strict"
    assert served.token not in cookie.get("value", "")
    assert SESSION_COOKIE not in page.evaluate("document.cookie")
    assert served.token not in page.content()
    machine.close()


def test_repeated_failed_logins_are_answered_with_a_wait_notice(
    browser: Browser, served: Served
) -> None:
    # This test's own throttle (a copy of the app's settings, fewer failures allowed), so the
    # module's other logins from 127.0.0.1 are not locked out.
    original = served.app.state.console_sessions
    served.app.state.console_sessions = ConsoleSessions(
        original.policy,
        LoginThrottle(failures=LOGIN_FAILURES, window=timedelta(minutes=5)),
    )
    machine = browser.new_context()
    page = machine.new_page()
    try:
        page.goto(f"{served.base_url}/console/login")
        for _ in range(LOGIN_FAILURES):
            page.get_by_label("API token").fill("llmb_wrong")
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_role("alert")).to_have_text("That token was not accepted.")

        page.get_by_label("API token").fill(served.token)
        with page.expect_response(f"{served.base_url}/console/login") as answer:
            page.get_by_role("button", name="Log in").click()

        assert answer.value.status == 429
        expect(page.get_by_role("alert")).to_contain_text("Too many failed logins")
        assert not [c for c in machine.cookies() if c.get("name") == SESSION_COOKIE]
    finally:
        served.app.state.console_sessions = original
        machine.close()
