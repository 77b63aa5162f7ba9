"""Hostile requests to the in-process app (the test client): a clear 4xx, nothing stored,
nothing hostile logged.

Oversized bodies on every route that takes one (the 64 KiB limit, ``llmbilling.api.limits``:
a declared ``Content-Length`` over it is refused with a 413 problem before a byte of the body
is read), JSON nested past the parser's depth, invalid UTF-8 and NUL bytes, SQL-looking values
where an id, a mode, a cursor, a time or a token belongs, NUL and traversal in ids and paths, and
the console's forms. Every case counts the rows of every table before and after and scans the
captured JSON logs (every line parses as one JSON object; no hostile body or token reaches
them). The limit itself: a body of exactly the limit is accepted, one byte more refused, counted
in the metrics and declared in the OpenAPI document; SQL where free text is allowed is stored
verbatim and runs nowhere.

The other channels: ``test_hostile_header_bytes.py`` (raw ASGI), ``test_hostile_real_server.py``
(raw sockets to ``llmbilling serve``), ``test_hostile_cli.py``; their harness:
``tests/reliability/hostile_harness.py``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from tests.api.api_fixtures import Api, bearer
from tests.reliability.hostile_harness import (
    HOSTILE,
    OVER_LIMIT,
    POLICY,
    SQL,
    SQL_ID,
    scanned_log_lines,
    stored_rows,
    tally_printed_at_the_end,
)

from llmbilling.api.limits import MAX_REQUEST_BODY_BYTES


@pytest.fixture(scope="module", autouse=True)
def _print_tally() -> Iterator[None]:
    yield from tally_printed_at_the_end("the in-process app")


@dataclass(frozen=True)
class Case:
    """One hostile request. Paths may name ``{ws}`` and ``{org}``; ``body`` is sent as is."""

    method: str
    path: str
    status: int
    code: str | None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    field: str | None = None
    console_session: bool = False


def _json(document: Any) -> bytes:
    return json.dumps(document).encode()


def _nested(depth: int, inner: str = "") -> str:
    return "[" * depth + inner + "]" * depth


OVERRIDE = "/v1/workspaces/{ws}/llm-billing-mode"
ORG_DEFAULT = "/v1/orgs/{org}/llm-billing-mode-default"
PROVISION = "/v1/workspaces/{ws}/provision-env"
WHATIF = "/v1/whatif"
CONSOLE_SET = "/console/workspaces/{ws}/override/set"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

CASES: dict[str, Case] = {
    # Oversized bodies: 413 before parsing, on every route that takes one.
    "oversized override body": Case(
        "PUT",
        OVERRIDE,
        413,
        "REQUEST_TOO_LARGE",
        _json({"mode": "byok", "note": HOSTILE + "x" * OVER_LIMIT}),
    ),
    "oversized org default (white space around a mode)": Case(
        "PUT",
        ORG_DEFAULT,
        413,
        "REQUEST_TOO_LARGE",
        _json({"mode": " " * OVER_LIMIT + "byok"}),
    ),
    "oversized provision body": Case(
        "POST",
        PROVISION,
        413,
        "REQUEST_TOO_LARGE",
        _json({"model": "gpt-5.5" + HOSTILE * (OVER_LIMIT // len(HOSTILE))}),
    ),
    "oversized what-if document": Case(
        "POST",
        WHATIF,
        413,
        "REQUEST_TOO_LARGE",
        _json({"policy": {**POLICY, "pad": HOSTILE + "x" * OVER_LIMIT}}),
    ),
    "oversized console login form": Case(
        "POST",
        "/console/login",
        413,
        "REQUEST_TOO_LARGE",
        ("token=" + HOSTILE + "x" * OVER_LIMIT).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ),
    "100k nested arrays (over the limit)": Case(
        "PUT", OVERRIDE, 413, "REQUEST_TOO_LARGE", _nested(100_000).encode()
    ),
    # Deep JSON within the limit: the parser gives up, the answer is a plain 400.
    "30k nested arrays": Case(
        "PUT", OVERRIDE, 400, "INVALID_INPUT", _nested(30_000).encode(), field="body"
    ),
    "20k nested arrays as the mode": Case(
        "PUT",
        OVERRIDE,
        400,
        "INVALID_INPUT",
        ('{"mode": ' + _nested(20_000, '"byok"') + "}").encode(),
        field="body",
    ),
    "20k nested arrays in a proposed policy": Case(
        "POST",
        WHATIF,
        400,
        "INVALID_INPUT",
        ('{"policy": {"rungs": ' + _nested(20_000) + "}}").encode(),
        field="body",
    ),
    # Invalid UTF-8 and NUL bytes in bodies.
    "invalid UTF-8 in the mode": Case(
        "PUT", OVERRIDE, 400, "INVALID_INPUT", b'{"mode": "by\xff\xfeok"}', field="body"
    ),
    "overlong UTF-8 encoding": Case(
        "PUT", ORG_DEFAULT, 400, "INVALID_INPUT", b'{"mode": "\xc0\xafbyok"}', field="body"
    ),
    "UTF-8 declared as latin-1": Case(
        "PUT",
        OVERRIDE,
        400,
        "INVALID_INPUT",
        b'{"mode": "byok\xe9"}',
        headers={"Content-Type": "application/json; charset=latin-1"},
        field="body",
    ),
    "raw NUL byte in the JSON": Case(
        "PUT", OVERRIDE, 400, "INVALID_INPUT", b'{"mode": "byok\x00"}', field="body"
    ),
    "escaped NUL in the mode": Case(
        "PUT", OVERRIDE, 400, "INVALID_INPUT", b'{"mode": "byok\\u0000"}', field="mode"
    ),
    "escaped NUL in the org default": Case(
        "PUT",
        ORG_DEFAULT,
        400,
        "INVALID_INPUT",
        b'{"mode": "byok\\u0000"}',
        field="mode",
    ),
    "escaped NUL in the provision model": Case(
        "POST", PROVISION, 400, "INVALID_INPUT", b'{"model": "gpt-5.5\\u0000"}', field="model"
    ),
    "lone surrogate in the provision model": Case(
        "POST", PROVISION, 400, "INVALID_INPUT", b'{"model": "gpt-5.5\\ud800"}', field="model"
    ),
    # SQL-looking values where an id or a mode belongs.
    "SQL as the override mode": Case(
        "PUT", OVERRIDE, 400, "INVALID_INPUT", _json({"mode": "byok" + SQL}), field="mode"
    ),
    "SQL as the org default": Case(
        "PUT",
        ORG_DEFAULT,
        400,
        "INVALID_INPUT",
        _json({"mode": "byok'; DROP TABLE workspaces; --"}),
        field="mode",
    ),
    "SQL as a workspace id (GET)": Case(
        "GET",
        f"/v1/workspaces/{SQL}/llm-billing-mode",
        400,
        "INVALID_INPUT",
        field="workspace_id",
    ),
    "SQL after a valid workspace id (PUT)": Case(
        "PUT",
        f"/v1/workspaces/{SQL_ID}/llm-billing-mode",
        400,
        "INVALID_INPUT",
        _json({"mode": "byok"}),
        field="workspace_id",
    ),
    "SQL as a workspace id (DELETE)": Case(
        "DELETE",
        f"/v1/workspaces/{SQL}/llm-billing-mode",
        400,
        "INVALID_INPUT",
        field="workspace_id",
    ),
    "SQL as a workspace id (provision)": Case(
        "POST", f"/v1/workspaces/{SQL}/provision-env", 400, "INVALID_INPUT", field="workspace_id"
    ),
    "SQL as an org id": Case(
        "PUT",
        f"/v1/orgs/{SQL_ID}/llm-billing-mode-default",
        400,
        "INVALID_INPUT",
        _json({"mode": "byok"}),
        field="org_id",
    ),
    "SQL as a listing cursor": Case(
        "GET",
        "/v1/orgs/{org}/workspaces",
        400,
        "INVALID_INPUT",
        query={"cursor": SQL},
        field="cursor",
    ),
    "SQL as a listing filter": Case(
        "GET",
        "/v1/orgs/{org}/workspaces",
        400,
        "INVALID_INPUT",
        query={"mode": "byok" + SQL},
        field="mode",
    ),
    "SQL as an audit org filter": Case(
        "GET", "/v1/audit", 400, "INVALID_INPUT", query={"org_id": SQL}, field="org_id"
    ),
    "SQL as an audit time": Case(
        "GET", "/v1/audit", 400, "INVALID_INPUT", query={"since": SQL}, field="since"
    ),
    "SQL as a what-if org": Case(
        "POST",
        WHATIF,
        400,
        "INVALID_INPUT",
        _json({"org_id": SQL, "policy": POLICY}),
        field="org_id",
    ),
    "SQL as If-Match": Case(
        "PUT",
        OVERRIDE,
        400,
        "INVALID_INPUT",
        _json({"mode": "byok"}),
        headers={"If-Match": f'"{SQL}"'},
        field="If-Match",
    ),
    "SQL as the bearer token": Case(
        "GET", OVERRIDE, 401, "UNAUTHENTICATED", headers={"Authorization": f"Bearer {SQL}"}
    ),
    # NUL and traversal in ids and paths.
    "NUL as a workspace id": Case(
        "GET", "/v1/workspaces/%00/llm-billing-mode", 400, "INVALID_INPUT", field="workspace_id"
    ),
    "NUL after a valid workspace id": Case(
        "PUT",
        "/v1/workspaces/{ws}%00/llm-billing-mode",
        400,
        "INVALID_INPUT",
        _json({"mode": "byok"}),
        field="workspace_id",
    ),
    "NUL in a listing cursor": Case(
        "GET",
        "/v1/orgs/{org}/workspaces",
        400,
        "INVALID_INPUT",
        query={"cursor": "\x00"},
        field="cursor",
    ),
    "traversal as a workspace id": Case(
        "GET", "/v1/workspaces/..%2F..%2Fetc%2Fpasswd/llm-billing-mode", 404, "NOT_FOUND"
    ),
    "traversal as a what-if policy": Case(
        "POST",
        WHATIF,
        400,
        "INVALID_INPUT",
        _json({"policy": "../../etc/passwd"}),
        field="policy",
    ),
    "absolute path as a what-if registry": Case(
        "POST",
        WHATIF,
        400,
        "INVALID_INPUT",
        _json({"registry": "/etc/passwd"}),
        field="registry",
    ),
    # The console's forms (an HTML error page, not a problem).
    "SQL as the console's override mode": Case(
        "POST",
        CONSOLE_SET,
        400,
        None,
        b"mode=byok%27%20OR%201%3D1%20--&version=" + HOSTILE.encode(),
        headers=FORM,
        console_session=True,
    ),
    "NUL as the console's override mode": Case(
        "POST",
        CONSOLE_SET,
        400,
        None,
        b"mode=byok%00&version=" + HOSTILE.encode(),
        headers=FORM,
        console_session=True,
    ),
    "invalid UTF-8 in a console form": Case(
        "POST",
        CONSOLE_SET,
        400,
        None,
        b"mode=by\xffok&version=\xfe" + HOSTILE.encode(),
        headers=FORM,
        console_session=True,
    ),
    "NUL as the console's version": Case(
        "POST",
        "/console/workspaces/{ws}/override/clear",
        400,
        None,
        b"version=%00",
        headers=FORM,
        console_session=True,
    ),
    "SQL as the console's workspace id": Case(
        "POST",
        "/console/workspaces/' OR 1=1 --/override/set",
        404,
        None,
        b"mode=byok&version=x",
        headers=FORM,
        console_session=True,
    ),
    "traversal into the console's static files": Case(
        "GET", "/console/static/..%2F..%2F..%2F..%2Fetc%2Fpasswd", 404, None
    ),
    "absolute path into the console's static files": Case(
        "GET", "/console/static/%2Fetc%2Fpasswd", 404, None
    ),
    "NUL in a console static file name": Case(
        "GET", "/console/static/console.css%00.html", 404, None
    ),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_hostile_request_is_a_clear_4xx_that_stores_and_logs_nothing(
    api: Api, captured_logs: io.StringIO, case: Case
) -> None:
    org_id, workspace_id = api.org_with_workspace(model="gpt-5.5", runtime="codex")
    token = api.token("admin")
    headers = {"Content-Type": "application/json", **bearer(token)}
    if case.path.startswith("/console/"):
        headers["Origin"] = "http://testserver"
    if case.console_session:
        signed_in = api.client.post(
            "/console/login",
            data={"token": token},
            headers={"Origin": "http://testserver"},
            follow_redirects=False,
        )
        assert signed_in.status_code == 303
    headers.update(case.headers)
    path = case.path.replace("{ws}", str(workspace_id)).replace("{org}", str(org_id))
    before = stored_rows(api.context)

    response = api.client.request(
        case.method, path, content=case.body, headers=headers, params=case.query or None
    )

    assert response.status_code == case.status, response.text
    assert stored_rows(api.context) == before
    assert "root:" not in response.text
    if case.code is not None:
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert (problem["status"], problem["code"]) == (case.status, case.code)
        assert problem.get("field") == case.field
        assert HOSTILE not in problem["message"]
    assert scanned_log_lines(captured_logs.getvalue(), HOSTILE, token) >= 1


def test_a_body_of_exactly_the_limit_is_accepted_and_one_byte_more_is_refused(
    api: Api,
) -> None:
    _, workspace_id = api.org_with_workspace()
    headers = {"Content-Type": "application/json", **api.admin_headers()}
    document = b'{"mode": "byok"}'
    at_limit = document + b" " * (MAX_REQUEST_BODY_BYTES - len(document))
    path = f"/v1/workspaces/{workspace_id}/llm-billing-mode"

    over = api.client.put(path, content=at_limit + b" ", headers=headers)
    assert (over.status_code, over.json()["code"]) == (413, "REQUEST_TOO_LARGE")
    assert api.client.get(path, headers=headers).json()["workspace_override"] is None

    accepted = api.client.put(path, content=at_limit, headers=headers)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["workspace_override"] == "byok"


def test_a_refused_body_is_counted_and_declared_in_the_openapi_document(api: Api) -> None:
    api.client.put(
        "/v1/workspaces/00000000-0000-0000-0000-000000000000/llm-billing-mode",
        content=b"x" * OVER_LIMIT,
        headers=api.admin_headers(),
    )
    metrics = api.client.get("/metrics").text
    assert 'llmbilling_errors_total{code="REQUEST_TOO_LARGE"} 1.0' in metrics
    operations = [
        operation
        for item in api.client.get("/openapi.json").json()["paths"].values()
        for operation in item.values()
        if "requestBody" in operation
    ]
    assert operations
    assert all("413" in operation["responses"] for operation in operations)


def test_sql_looking_values_are_stored_as_text_and_never_executed(api: Api) -> None:
    """Where free text is allowed (a model name), SQL is kept verbatim and runs nowhere."""
    _, workspace_id = api.org_with_workspace()
    headers = api.admin_headers()
    model = "x'); DROP TABLE workspaces; --"
    before = stored_rows(api.context)

    provisioned = api.client.post(
        f"/v1/workspaces/{workspace_id}/provision-env", json={"model": model}, headers=headers
    )

    assert provisioned.status_code == 200, provisioned.text
    assert provisioned.json()["model"] == model
    decision = api.client.get(f"/v1/workspaces/{workspace_id}/llm-billing-mode", headers=headers)
    assert decision.json()["provider"] == model  # unregistered: the raw model, as given
    after = stored_rows(api.context)
    assert after["workspaces"] == before["workspaces"]
    assert after["provisions"] == before["provisions"] + 1
