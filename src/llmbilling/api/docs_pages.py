"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), served with no request leaving the origin.

The UIs' assets are the ones the ``fastapi-offline`` package ships (docs/DECISIONS.md); the
pages and their start-up scripts are ours, so the pages hold no inline script and a
Content-Security-Policy can forbid anything but this origin.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from llmbilling.api.console.rendering import environment
from llmbilling.errors import RouteNotFoundError

ASSETS_PATH = "/docs-assets"
# Swagger UI and ReDoc set inline styles; ReDoc runs its search index in a blob: worker;
# Swagger UI's icons are data: images. Nothing may come from another origin.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline';"
    " img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; font-src 'self';"
    " frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

_VENDORED = Path(str(files(fastapi_offline) / "static"))
_OURS = Path(str(files("llmbilling.api") / "static" / "docs"))
ASSETS: dict[str, tuple[Path, str]] = {
    "swagger-ui.css": (_VENDORED / "swagger-ui.css", "text/css; charset=utf-8"),
    "swagger-ui-bundle.js": (_VENDORED / "swagger-ui-bundle.js", "text/javascript"),
    "redoc.standalone.js": (_VENDORED / "redoc.standalone.js", "text/javascript"),
    "favicon.png": (_VENDORED / "favicon.png", "image/png"),
    "swagger-init.js": (_OURS / "swagger-init.js", "text/javascript"),
    "redoc-init.js": (_OURS / "redoc-init.js", "text/javascript"),
}

router = APIRouter(include_in_schema=False)


# ReDoc's side menu always shows Redocly's logo from its CDN (no option turns it off); an empty
# data: image fails to decode instead, and ReDoc then drops the <img> (its onError).
_REDOC_CDN_LOGO = (b"https://cdn.redoc.ly/redoc/logo-mini.svg", b"data:,")


@cache
def _asset(name: str) -> bytes:
    content = ASSETS[name][0].read_bytes()
    if name == "redoc.standalone.js":
        content = content.replace(*_REDOC_CDN_LOGO)
    return content


def _page(request: Request, template: str) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    html = (
        environment()
        .get_template(template)
        .render(
            title=request.app.title,
            assets=f"{root}{ASSETS_PATH}",
            openapi_url=f"{root}{request.app.openapi_url}",
        )
    )
    return HTMLResponse(
        html,
        headers={"Content-Security-Policy": DOCS_POLICY, "X-Content-Type-Options": "nosniff"},
    )


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    return _page(request, "docs_swagger.html")


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    return _page(request, "docs_redoc.html")


@router.get(f"{ASSETS_PATH}/{{name}}")
def docs_asset(name: str) -> Response:
    if name not in ASSETS:
        raise RouteNotFoundError(f"no documentation asset {name!r}")
    return Response(
        _asset(name),
        media_type=ASSETS[name][1],
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
