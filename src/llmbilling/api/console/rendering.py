"""Templates, static assets and the headers every console response carries."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from uuid import UUID

import jinja2
from markupsafe import Markup
from starlette.responses import HTMLResponse, Response

_API_DIR = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = _API_DIR / "templates"
STATIC_DIR = _API_DIR / "static"

# Served by name only: a fixed list, so no request path ever reaches the file system.
STATIC_FILES: dict[str, str] = {
    "console.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}

# No inline script or style anywhere, so the policy can forbid both; forms post only to us.
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self';"
        " frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def _short_id(value: UUID | str | None) -> str:
    return "" if value is None else str(value)[:8]


def _timestamp(value: datetime | None) -> Markup:
    """Every timestamp on every page: UTC, said so, with the ISO 8601 instant (offset
    included) in a ``<time>`` element for machines and copy-paste."""
    if value is None:
        return Markup("")
    if value.tzinfo is None:
        # SQLite hands back naive datetimes; they were written in UTC.
        value = value.replace(tzinfo=UTC)
    instant = value.astimezone(UTC).replace(microsecond=0)
    return Markup('<time datetime="{}">{} UTC</time>').format(
        instant.isoformat(), instant.strftime("%Y-%m-%d %H:%M:%S")
    )


def _thousands(value: int | None) -> str:
    """Every count on every page, with the same separator: 12,345."""
    return "" if value is None else f"{value:,}"


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["short_id"] = _short_id
    env.filters["timestamp"] = _timestamp
    env.filters["thousands"] = _thousands
    return env


def with_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def render(template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    """A page; never cached, since every page shows what one token may see."""
    html = environment().get_template(template).render(**values)
    response = HTMLResponse(html, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


@cache
def static_file(name: str) -> bytes:
    return (STATIC_DIR / name).read_bytes()
