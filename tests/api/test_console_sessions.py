"""Console sessions live in the store: the cookie holds a random secret (never the token),
logout and revocation end the session, so do idle and absolute expiry; failed logins are
throttled per client. Time is an injected clock, so nothing here waits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from tests.api.api_fixtures import Answer
from tests.store.db_fixtures import ContextFactory

from llmbilling.api.app import create_app
from llmbilling.api.console.session import SESSION_COOKIE, ConsoleSessions, LoginThrottle
from llmbilling.config.settings import Settings
from llmbilling.service.console_sessions import SessionPolicy
from llmbilling.service.context import ServiceContext
from llmbilling.service.tokens import IssuedToken, Scope, create_token, revoke_token
from llmbilling.store.tables import api_tokens, console_sessions

ORIGIN = "http://testserver"
SAME_ORIGIN = {"Origin": ORIGIN}
IDLE = timedelta(minutes=30)
LIFETIME = timedelta(hours=12)
FAILURES = 5
WINDOW = timedelta(minutes=5)


@dataclass
class Clock:
    at: datetime = field(default_factory=lambda: datetime(2026, 12, 1, 9, 0, tzinfo=UTC))

    def now(self) -> datetime:
        return self.at

    def advance(self, by: timedelta) -> None:
        self.at += by


@dataclass(frozen=True)
class Console:
    app: FastAPI
    context: ServiceContext
    clock: Clock

    def issue(self) -> IssuedToken:
        return create_token(self.context, scope=Scope.ADMIN)

    def browser(self, address: str = "198.51.100.7") -> TestClient:
        return TestClient(self.app, base_url=ORIGIN, follow_redirects=False, client=(address, 1))

    def signed_in_browser(self, token: str) -> TestClient:
        browser = self.browser()
        assert log_in(browser, token).status_code == 303
        return browser

    def session_row(self, secret: str) -> dict[str, object] | None:
        with self.context.store.read_engine.connect() as connection:
            row = connection.execute(
                select(console_sessions).where(console_sessions.c.id == _hash(secret))
            ).first()
        return None if row is None else dict(row._mapping)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def log_in(browser: TestClient, token: str) -> Answer:
    return browser.post("/console/login", data={"token": token}, headers=SAME_ORIGIN)


def is_signed_in(browser: TestClient) -> bool:
    answer = browser.get("/console/")
    assert answer.status_code in (200, 303), answer.text
    return answer.status_code == 200


@pytest.fixture
def console(make_context: ContextFactory) -> Console:
    context = make_context()
    clock = Clock()
    app = create_app(context=context)
    app.state.console_sessions = ConsoleSessions(
        SessionPolicy(idle=IDLE, lifetime=LIFETIME),
        LoginThrottle(failures=FAILURES, window=WINDOW),
        clock=clock.now,
    )
    return Console(app, context, clock)


# --- the cookie ------------------------------------------------------------------------------


def test_the_cookie_holds_a_session_secret_never_the_token_and_the_store_only_its_hash(
    console: Console,
) -> None:
    token = console.issue().token
    browser = console.signed_in_browser(token)

    secret = browser.cookies[SESSION_COOKIE]
    assert token not in secret
    assert secret not in token
    row = console.session_row(secret)
    assert row is not None
    assert secret not in str(row.values())
    assert token not in str(row.values())


def test_the_cookie_expires_with_the_session_lifetime(console: Console) -> None:
    answer = console.browser().post(
        "/console/login", data={"token": console.issue().token}, headers=SAME_ORIGIN
    )

    assert f"Max-Age={int(LIFETIME.total_seconds())}" in answer.headers["set-cookie"]


# --- what ends a session ---------------------------------------------------------------------


def test_after_logout_a_copy_of_the_cookie_is_refused(console: Console) -> None:
    browser = console.signed_in_browser(console.issue().token)
    copied = console.browser()
    copied.cookies.set(SESSION_COOKIE, browser.cookies[SESSION_COOKIE], path="/console")
    assert is_signed_in(copied)

    assert browser.post("/console/logout", headers=SAME_ORIGIN).status_code == 303

    assert not is_signed_in(copied)


def test_revoking_the_token_ends_its_sessions_in_the_same_transaction(console: Console) -> None:
    issued = console.issue()
    browser = console.signed_in_browser(issued.token)
    secret = browser.cookies[SESSION_COOKIE]

    revoke_token(console.context, issued.info.id)

    row = console.session_row(secret)
    assert row is not None
    assert row["ended_at"] is not None
    assert not is_signed_in(browser)


def test_a_token_revoked_by_another_tool_ends_the_session_at_its_next_request(
    console: Console,
) -> None:
    issued = console.issue()
    browser = console.signed_in_browser(issued.token)

    _revoke_behind_the_service(console.context, issued.info.id)

    assert not is_signed_in(browser)


def _revoke_behind_the_service(context: ServiceContext, token_id: UUID) -> None:
    with context.store.transaction() as connection:
        connection.execute(
            update(api_tokens)
            .where(api_tokens.c.id == token_id)
            .values(revoked_at=datetime.now(UTC))
        )


@pytest.mark.parametrize(
    ("unused_for", "signed_in"),
    [(IDLE - timedelta(seconds=1), True), (IDLE, False), (IDLE + timedelta(hours=1), False)],
)
def test_a_session_unused_for_the_idle_timeout_ends(
    console: Console, unused_for: timedelta, signed_in: bool
) -> None:
    browser = console.signed_in_browser(console.issue().token)

    console.clock.advance(unused_for)

    assert is_signed_in(browser) is signed_in


def test_activity_restarts_the_idle_clock_but_not_the_absolute_lifetime(
    console: Console,
) -> None:
    browser = console.signed_in_browser(console.issue().token)
    step = IDLE - timedelta(minutes=1)
    elapsed = timedelta(0)
    while elapsed + step < LIFETIME:
        console.clock.advance(step)
        elapsed += step
        assert is_signed_in(browser), f"signed out after {elapsed}"

    console.clock.advance(LIFETIME - elapsed)

    assert not is_signed_in(browser)


def test_an_expired_session_stays_ended_even_if_the_clock_goes_back(console: Console) -> None:
    browser = console.signed_in_browser(console.issue().token)
    console.clock.advance(IDLE)
    assert not is_signed_in(browser)

    console.clock.advance(-IDLE)

    assert not is_signed_in(browser)


def test_logging_in_again_ends_the_previous_session(console: Console) -> None:
    token = console.issue().token
    browser = console.signed_in_browser(token)
    first = browser.cookies[SESSION_COOKIE]

    assert log_in(browser, token).status_code == 303

    row = console.session_row(first)
    assert row is not None
    assert row["ended_at"] is not None
    assert browser.cookies[SESSION_COOKIE] != first
    assert is_signed_in(browser)


# --- the login throttle ----------------------------------------------------------------------


def _fail(browser: TestClient, times: int) -> None:
    for _ in range(times):
        assert log_in(browser, "llmb_wrong").status_code == 401


def test_the_login_after_the_allowed_failures_is_a_429_with_retry_after(
    console: Console,
) -> None:
    browser = console.browser()
    _fail(browser, FAILURES)

    answer = log_in(browser, "llmb_wrong")

    assert answer.status_code == 429
    assert answer.headers["retry-after"] == str(int(WINDOW.total_seconds()))
    assert "Too many failed logins" in answer.text


def test_while_throttled_even_the_right_token_is_refused(console: Console) -> None:
    browser = console.browser()
    _fail(browser, FAILURES)

    assert log_in(browser, console.issue().token).status_code == 429
    assert SESSION_COOKIE not in browser.cookies


def test_a_client_is_admitted_again_once_its_oldest_failure_leaves_the_window(
    console: Console,
) -> None:
    browser = console.browser()
    _fail(browser, 1)
    console.clock.advance(timedelta(minutes=1))
    _fail(browser, FAILURES - 1)
    console.clock.advance(WINDOW - timedelta(minutes=1) - timedelta(seconds=1))
    assert log_in(browser, "llmb_wrong").status_code == 429

    console.clock.advance(timedelta(seconds=1))

    assert log_in(browser, console.issue().token).status_code == 303


def test_a_successful_login_clears_the_clients_failures(console: Console) -> None:
    browser = console.browser()
    _fail(browser, FAILURES - 1)
    assert log_in(browser, console.issue().token).status_code == 303

    _fail(browser, FAILURES - 1)

    assert log_in(browser, console.issue().token).status_code == 303


def test_the_throttle_counts_each_client_address_apart(console: Console) -> None:
    _fail(console.browser("198.51.100.7"), FAILURES)

    other = console.browser("203.0.113.9")

    assert log_in(other, console.issue().token).status_code == 303


def test_by_default_a_session_ends_after_half_an_hour_idle_or_twelve_hours_in_all() -> None:
    defaults = ConsoleSessions.from_settings(Settings())

    assert defaults.policy == SessionPolicy(idle=timedelta(minutes=30), lifetime=LIFETIME)
