"""The console's session cookie and its cross-site request forgery guard.

The cookie carries the API token itself: every request authenticates it again through the
same ``authenticate`` the JSON API uses, so a revoked token ends its console sessions at once
and no server-side session store is needed. It is HttpOnly (scripts cannot read it),
SameSite=Strict (browsers do not send it on cross-site requests), Secure over HTTPS, and scoped
to ``/console``. It is never rendered into a page.

Every state-changing POST must also come from our own origin: the ``Origin`` header (or,
when a browser omits it, the ``Referer``) must match the scheme and host the request was
sent to. SameSite alone leaves gaps (old browsers, same-site sibling hosts); the header check
closes them without a token to keep.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Request
from starlette.responses import Response

SESSION_COOKIE = "llmbilling_console"
COOKIE_PATH = "/console"
CONSOLE_HOME = "/console/"


def session_token(request: Request) -> str | None:
    token = request.cookies.get(SESSION_COOKIE)
    return token if token else None


def start_session(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def end_session(request: Request, response: Response) -> None:
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
