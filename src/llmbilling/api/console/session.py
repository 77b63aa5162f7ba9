"""The console's sessions, its login throttle, and its cross-site request forgery guard.

Sessions are kept server-side (``service.console_sessions``): the cookie carries only a
random session secret, never the API token, and the database keeps only the secret's hash.
Every console request resumes the session: logout ends it there (a copied cookie then fails
too), revoking the token ends it, and it ends ``console_session_idle_seconds`` after its last
request and ``console_session_max_seconds`` after login, whatever the activity. The cookie is
HttpOnly (scripts cannot read it), SameSite=Strict (browsers do not send it on cross-site
requests), Secure over HTTPS, scoped to ``/console``, and expires with the session's lifetime.
It is never rendered into a page.

Failed logins are throttled per client address (:class:`LoginThrottle`): after
``console_login_failures`` failures within ``console_login_window_seconds`` the login form
answers 429 with ``Retry-After`` until the oldest failure leaves the window; a success clears
the client's count. The count is held in this process: several replicas each keep their own
window. The client is the connection's peer address, so behind a reverse proxy the server
must be told to trust its forwarded address (uvicorn's ``--proxy-headers`` with
``--forwarded-allow-ips``), or every client shares the proxy's one window.

Every state-changing POST must also come from our own origin: the ``Origin`` header (or,
when a browser omits it, the ``Referer``) must match the scheme and host the request was
sent to. SameSite alone leaves gaps (old browsers, same-site sibling hosts); the header check
closes them without a token to keep.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import cast
from urllib.parse import urlsplit

from fastapi import Request
from starlette.responses import Response

from llmbilling.config.settings import Settings
from llmbilling.service.audit import now as utc_now
from llmbilling.service.console_sessions import SessionPolicy, StartedSession

SESSION_COOKIE = "llmbilling_console"
COOKIE_PATH = "/console"
CONSOLE_HOME = "/console/"


class LoginThrottle:
    """Failed logins per client in a sliding window, held in this process.

    At most ``capacity`` clients are tracked (least recently failing out), so a flood of
    addresses costs bounded memory; evicting a client only forgets its failures.
    """

    def __init__(self, *, failures: int, window: timedelta, capacity: int = 10_000) -> None:
        self._failures = failures
        self._window = window
        self._capacity = capacity
        self._seen: OrderedDict[str, deque[datetime]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, client: str, now: datetime) -> int | None:
        """Whole seconds until ``client`` may try again, or None when it may try now."""
        with self._lock:
            failed = self._recent(client, now)
            if len(failed) < self._failures:
                return None
            # The attempt is admitted once enough failures have left the window.
            reopens = failed[len(failed) - self._failures] + self._window
            return max(1, math.ceil((reopens - now).total_seconds()))

    def failed(self, client: str, now: datetime) -> None:
        with self._lock:
            failed = self._recent(client, now)
            failed.append(now)
            self._seen[client] = failed
            self._seen.move_to_end(client)
            while len(self._seen) > self._capacity:
                self._seen.popitem(last=False)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._seen.pop(client, None)

    def _recent(self, client: str, now: datetime) -> deque[datetime]:
        failed = self._seen.get(client, deque())
        while failed and failed[0] + self._window <= now:
            failed.popleft()
        if not failed:
            self._seen.pop(client, None)
        return failed


class ConsoleSessions:
    """This process's share of console sign-in: the session policy, the login throttle, and
    the clock both read (injected by tests; UTC wall time otherwise)."""

    def __init__(
        self,
        policy: SessionPolicy,
        throttle: LoginThrottle,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.policy = policy
        self.throttle = throttle
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: Settings) -> ConsoleSessions:
        return cls(
            SessionPolicy(
                idle=timedelta(seconds=settings.console_session_idle_seconds),
                lifetime=timedelta(seconds=settings.console_session_max_seconds),
            ),
            LoginThrottle(
                failures=settings.console_login_failures,
                window=timedelta(seconds=settings.console_login_window_seconds),
            ),
        )

    def now(self) -> datetime:
        return self._clock()


def console_sessions_of(request: Request) -> ConsoleSessions:
    return cast(ConsoleSessions, request.app.state.console_sessions)


def client_address(request: Request) -> str:
    """Whom the login throttle counts: the peer address (see the module's note on proxies)."""
    return request.client.host if request.client is not None else "unknown"


def session_secret(request: Request) -> str | None:
    secret = request.cookies.get(SESSION_COOKIE)
    return secret if secret else None


def set_session_cookie(
    request: Request, response: Response, started: StartedSession, policy: SessionPolicy
) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        started.secret,
        max_age=int(policy.lifetime.total_seconds()),
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def is_same_origin(request: Request) -> bool:
    """True when the request names our own origin in ``Origin`` (or else ``Referer``).

    A request naming neither is refused: every browser that can submit our forms sends one.
    """
    host = request.headers.get("host")
    if not host:
        return False
    expected = f"{request.url.scheme}://{host}".lower()
    origin = request.headers.get("origin")
    if origin is not None:
        # "null" (sandboxed frames, some redirects) never matches.
        return _origin_of(origin) == expected
    referer = request.headers.get("referer")
    return referer is not None and _origin_of(referer) == expected


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a console path only, never another site."""
    if (
        target
        and target.startswith(COOKIE_PATH)
        and not target.startswith("//")
        and "\\" not in target
        and "://" not in target
    ):
        return target
    return CONSOLE_HOME
