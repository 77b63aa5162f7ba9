"""Hostile input: the real app answers a clear 4xx, stores nothing and logs nothing it should
not — in-process (the test client, and raw ASGI calls for the header bytes a client library
refuses to send), against a real ``llmbilling serve`` on 127.0.0.1 over raw sockets (for what
only a real HTTP parser sees), and through the CLI's path arguments.

The body limit is 64 KiB (``llmbilling.api.limits``): a declared ``Content-Length`` over it is
refused with a 413 problem before a byte of the body is read; a chunked body is refused as soon
as it goes over. Every case counts the rows of every table before and after (nothing stored)
and scans the captured JSON logs (every line parses as one JSON object; no hostile body, header
value or token reaches them).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import logging
import os
import socket
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import func, select
from tests.api.api_fixtures import Api, bearer
from tests.cli.cli_runner import Cli
from tests.reliability.servers import SeededStore, ServerProcess, seed_store
from tests.store.db_fixtures import SAAS_PROXY

from llmbilling.api.limits import MAX_REQUEST_BODY_BYTES
from llmbilling.api.observability import configure_logging
from llmbilling.cli.app import main
from llmbilling.registry_files import built_in_registry
from llmbilling.service import admin
from llmbilling.service.context import DeploymentInputs, ServiceContext
from llmbilling.settings import PROXY_ENV_FIELDS
from llmbilling.store import migrate
from llmbilling.store.crypto import KeyRing
from llmbilling.store.engine import Store, open_store
from llmbilling.store.tables import metadata

# Planted in hostile bodies and header values: it must never reach a log line.
HOSTILE = "HOSTILE-SENTINEL-c0ffee"
OVER_LIMIT = MAX_REQUEST_BODY_BYTES + 1
SQL = "' OR 1=1 --"
SQL_ID = "00000000-0000-0000-0000-000000000000' OR '1'='1"


@dataclass
class Tally:
    """What the module checked, for the record (printed with ``pytest -s``)."""

    row_counts: int = 0  # tables counted, before and after
    log_lines: int = 0


TALLY = Tally()


@pytest.fixture(scope="module", autouse=True)
def _print_tally() -> Iterator[None]:
    yield
    print(
        f"\n[reliability] hostile input: {TALLY.row_counts} table row counts compared,"
        f" {TALLY.log_lines} log lines scanned, 0 findings"
    )


def count_rows(store: Store) -> dict[str, int]:
    """The row count of every table."""
    with store.read_engine.connect() as connection:
        counts = {
            table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in metadata.sorted_tables
        }
    TALLY.row_counts += len(counts)
    return counts


def stored_rows(context: ServiceContext) -> dict[str, int]:
    return count_rows(context.store)


def rows_at(database_url: str) -> dict[str, int]:
    store = open_store(database_url)
    try:
        return count_rows(store)
    finally:
        store.close()


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """The app's JSON logs (structlog and stdlib), as ``llmbilling serve`` writes them."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging(stream, level=logging.DEBUG)
    yield stream
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def scanned_log_lines(logged: str, *never: str) -> int:
    """Every line is one JSON object (so nothing hostile split or forged a line) and holds none
    of ``never``; returns how many lines were scanned."""
    lines = logged.splitlines()
    for line in lines:
        assert isinstance(json.loads(line), dict), line
        for needle in never:
            assert needle not in line, line
    TALLY.log_lines += len(lines)
    return len(lines)


# --- the in-process app ---------------------------------------------------------------------------


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
POLICY = {"rungs": ["workspace_override", "derived_provider", "deployment_default"]}
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
        field="llm_billing_mode_default",
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
        field="llm_billing_mode_default",
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
        412,
        "PRECONDITION_FAILED",
        _json({"mode": "byok"}),
        headers={"If-Match": f'"{SQL}"'},
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
        api.client.cookies.set("llmbilling_console", token, path="/console")
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


# --- raw ASGI: header bytes a client library will not send ----------------------------------------


@dataclass(frozen=True)
class RawAnswer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key.lower() == name]


def asgi_call(
    app: Callable[..., Any],
    method: str,
    raw_path: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes = b"",
) -> RawAnswer:
    """Call the ASGI app directly: headers and path reach it byte for byte."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": raw_path.decode("latin-1"),
        "raw_path": raw_path,
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop(0)
        await asyncio.Event().wait()  # no disconnect: the call ends when the app answers
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = sent[0]
    return RawAnswer(
        start["status"],
        list(start["headers"]),
        b"".join(message.get("body", b"") for message in sent[1:]),
    )


REQUEST_ID_ATTACKS = {
    "CR LF and a forged header": b"abc\r\nSet-Cookie: stolen=" + HOSTILE.encode(),
    "bare LF": b"abc\nX-Injected: " + HOSTILE.encode(),
    "bare CR": b"abc\rX-Injected: 1",
    "NUL": b"abc\x00" + HOSTILE.encode(),
    "NEL (latin-1 0x85)": b"abc\x85X-Injected: 1",
    "percent-encoded CR LF": b"abc%0d%0aX-Injected:%201",
    "UTF-8 line separator": "abc\u2028X-Injected: 1".encode(),
    "SQL": SQL.encode(),
    "129 characters": b"a" * 129,
}


@pytest.mark.parametrize("value", REQUEST_ID_ATTACKS.values(), ids=list(REQUEST_ID_ATTACKS))
def test_a_request_id_that_is_not_plain_is_replaced_never_echoed(
    api: Api, captured_logs: io.StringIO, value: bytes
) -> None:
    _, workspace_id = api.org_with_workspace()
    token = api.token("admin")
    answer = asgi_call(
        api.app,
        "GET",
        f"/v1/workspaces/{workspace_id}/llm-billing-mode".encode(),
        [(b"authorization", f"Bearer {token}".encode()), (b"x-request-id", value)],
    )
    assert answer.status == 200
    (echoed,) = answer.header(b"x-request-id")
    assert uuid.UUID(echoed.decode())  # a fresh id, not the caller's
    assert not answer.header(b"set-cookie")
    assert not answer.header(b"x-injected")
    assert all(b"\r" not in v and b"\n" not in v for _, v in answer.headers)
    assert scanned_log_lines(captured_logs.getvalue(), HOSTILE, token, "X-Injected") >= 1


HEADER_ATTACKS: dict[str, tuple[list[tuple[bytes, bytes]], int, str]] = {
    "NUL inside the bearer token": (
        [(b"authorization", b"Bearer {token}\x00")],
        401,
        "UNAUTHENTICATED",
    ),
    "CR LF inside the bearer token": (
        [(b"authorization", b"Bearer {token}\r\nX-Injected: 1")],
        401,
        "UNAUTHENTICATED",
    ),
    "a 100 KiB bearer token": (
        [(b"authorization", b"Bearer " + b"a" * 102_400)],
        401,
        "UNAUTHENTICATED",
    ),
    "invalid UTF-8 bearer token": (
        [(b"authorization", b"Bearer \xff\xfe\xfd")],
        401,
        "UNAUTHENTICATED",
    ),
    "NUL inside If-Match": (
        [(b"authorization", b"Bearer {token}"), (b"if-match", b'"w1.o1.0000000000000000"\x00')],
        412,
        "PRECONDITION_FAILED",
    ),
    "20,000 tags in If-Match": (
        [(b"authorization", b"Bearer {token}"), (b"if-match", b'"x",' * 20_000)],
        412,
        "PRECONDITION_FAILED",
    ),
    "a declared length over the limit (no body read)": (
        [(b"authorization", b"Bearer {token}"), (b"content-length", b"1073741824")],
        413,
        "REQUEST_TOO_LARGE",
    ),
    "an unparseable Content-Length": (
        [(b"authorization", b"Bearer {token}"), (b"content-length", b"12abc")],
        413,
        "REQUEST_TOO_LARGE",
    ),
}


@pytest.mark.parametrize(
    ("headers", "status", "code"), HEADER_ATTACKS.values(), ids=list(HEADER_ATTACKS)
)
def test_hostile_header_bytes_are_refused_and_store_nothing(
    api: Api,
    captured_logs: io.StringIO,
    headers: list[tuple[bytes, bytes]],
    status: int,
    code: str,
) -> None:
    _, workspace_id = api.org_with_workspace()
    token = api.token("admin")
    sent = [(name, value.replace(b"{token}", token.encode())) for name, value in headers]
    before = stored_rows(api.context)

    answer = asgi_call(
        api.app,
        "PUT",
        f"/v1/workspaces/{workspace_id}/llm-billing-mode".encode(),
        [(b"content-type", b"application/json"), *sent],
        b'{"mode": "byok"}',
    )

    assert answer.status == status, answer.body
    assert json.loads(answer.body)["code"] == code
    assert stored_rows(api.context) == before
    assert not answer.header(b"x-injected")
    assert scanned_log_lines(captured_logs.getvalue(), token) >= 1


@pytest.mark.parametrize(
    "raw_path",
    [
        b"/console/static/../../../../etc/passwd",
        b"/console/static/..\\..\\..\\etc\\passwd",
        b"/console/static//etc/passwd",
        b"/console/static/console.css\x00../../etc/passwd",
        b"/v1/workspaces/../../../etc/passwd/llm-billing-mode",
    ],
)
def test_path_traversal_never_serves_a_file(api: Api, raw_path: bytes) -> None:
    token = api.token("admin")
    answer = asgi_call(api.app, "GET", raw_path, [(b"authorization", f"Bearer {token}".encode())])
    assert answer.status in (400, 404)
    assert b"root:" not in answer.body


# --- a real llmbilling serve, over raw sockets ----------------------------------------------------


@dataclass
class RealServer:
    process: ServerProcess
    seeded: SeededStore

    def rows(self) -> dict[str, int]:
        return rows_at(self.seeded.database_url)


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    folder = tmp_path_factory.mktemp("hostile-serve")
    seeded = seed_store(f"sqlite:///{folder / 'store.sqlite3'}", workspaces=1)
    process = ServerProcess(seeded.database_url, folder)
    process.start()
    try:
        yield RealServer(process, seeded)
    finally:
        process.stop()


def exchange(port: int, request: bytes, *, then: bytes | None = None) -> bytes:
    """Send ``request`` raw, read the answer until the server closes the connection or one
    whole response has arrived (bounded by a generous socket timeout: a hang fails the test)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(request)
        received = b""
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
            if _complete(received):
                break
        if then is not None:
            # The server answered before the body was sent: it must not want the rest.
            with contextlib.suppress(OSError):
                connection.sendall(then)
    return received


def _complete(received: bytes) -> bool:
    head, separator, body = received.partition(b"\r\n\r\n")
    if not separator:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def parse_head(received: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.split(b"\r\n")
    headers = []
    for line in lines:
        name, separator, value = line.partition(b":")
        assert separator, f"a response header line without a colon: {line!r}"
        headers.append((name.strip().lower(), value.strip()))
    return int(status_line.split()[1]), headers, body


def request_bytes(
    method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> bytes:
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1"]
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def still_serving_with_clean_logs(server: RealServer) -> int:
    """The server is up and answers; its log is JSON lines without the hostile values, the
    token or a forged header, and no unhandled error. Returns the log lines scanned."""
    status, _, _ = parse_head(exchange(server.process.port, request_bytes("GET", b"/healthz", [])))
    assert status == 200
    assert server.process.alive()
    logged = server.process.log_path.read_text(encoding="utf-8", errors="strict")
    lines = scanned_log_lines(logged, HOSTILE, server.seeded.token, "X-Injected")
    assert server.process.log_lines_with("unhandled_error", "Traceback") == 0
    return lines


def test_real_server_refuses_a_declared_huge_body_before_reading_it(
    real_server: RealServer,
) -> None:
    seeded = real_server.seeded
    before = real_server.rows()
    head = request_bytes(
        "PUT",
        f"/v1/workspaces/{seeded.workspace_ids[0]}/llm-billing-mode".encode(),
        [
            (b"Authorization", f"Bearer {seeded.token}".encode()),
            (b"Content-Type", b"application/json"),
            (b"Content-Length", str(1024**3).encode()),
        ],
        b'{"mode": "byok", "pad": "' + HOSTILE.encode(),
    )
    # A gigabyte is declared; a few bytes are sent; the answer comes anyway.
    status, headers, body = parse_head(exchange(real_server.process.port, head))
    assert status == 413
    assert json.loads(body)["code"] == "REQUEST_TOO_LARGE"
    assert (b"connection", b"close") in headers
    assert real_server.rows() == before
    assert still_serving_with_clean_logs(real_server) > 0


def test_real_server_refuses_a_chunked_body_as_soon_as_it_goes_over(
    real_server: RealServer,
) -> None:
    seeded = real_server.seeded
    before = real_server.rows()
    chunk = b"x" * 8192
    chunked = b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(9))
    request = request_bytes(
        "PUT",
        f"/v1/workspaces/{seeded.workspace_ids[0]}/llm-billing-mode".encode(),
        [
            (b"Authorization", f"Bearer {seeded.token}".encode()),
            (b"Content-Type", b"application/json"),
            (b"Transfer-Encoding", b"chunked"),
        ],
        chunked,  # 72 KiB sent, never terminated: the server must not wait for the end
    )
    status, _, body = parse_head(exchange(real_server.process.port, request))
    assert status == 413
    assert json.loads(body)["code"] == "REQUEST_TOO_LARGE"
    assert real_server.rows() == before
    assert still_serving_with_clean_logs(real_server) > 0


RAW_REQUEST_ID_ATTACKS = {
    "bare LF then a forged header": b"abc\nX-Injected: 1",
    "bare CR then a forged header": b"abc\rX-Injected: 1",
    "NUL": b"abc\x00def",
    "NEL (0x85)": b"abc\x85X-Injected: 1",
    "percent-encoded CR LF": b"abc%0d%0aX-Injected:%201",
    "UTF-8 line separator": "abc\u2028X-Injected: 1".encode(),
    "SQL": SQL.encode(),
}


@pytest.mark.parametrize("value", RAW_REQUEST_ID_ATTACKS.values(), ids=list(RAW_REQUEST_ID_ATTACKS))
def test_real_server_never_echoes_an_injected_request_id(
    real_server: RealServer, value: bytes
) -> None:
    seeded = real_server.seeded
    request = request_bytes(
        "GET",
        f"/v1/workspaces/{seeded.workspace_ids[0]}/llm-billing-mode".encode(),
        [(b"Authorization", f"Bearer {seeded.token}".encode()), (b"X-Request-ID", value)],
    )
    received = exchange(real_server.process.port, request)
    status, headers, _ = parse_head(received)
    # The HTTP parser may refuse the header outright (400); if it passes it on, the app
    # answers with an id of its own.
    assert status in (200, 400), received[:300]
    assert not [name for name, _ in headers if name == b"x-injected"]
    if status == 200:
        (echoed,) = [v for name, v in headers if name == b"x-request-id"]
        assert uuid.UUID(echoed.decode())
    assert still_serving_with_clean_logs(real_server) > 0


RAW_TARGETS = {
    "traversal into static files": b"/console/static/../../../../etc/passwd",
    "encoded traversal": b"/console/static/..%2F..%2F..%2Fetc%2Fpasswd",
    "NUL in the path": b"/v1/workspaces/%00/llm-billing-mode",
    "raw NUL in the path": b"/v1/workspaces/\x00/llm-billing-mode",
    "invalid UTF-8 in the path": b"/v1/workspaces/\xff\xfe/llm-billing-mode",
    "SQL in the path (raw spaces)": b"/v1/workspaces/' OR 1=1 --/llm-billing-mode",
    "SQL in the path (encoded)": b"/v1/workspaces/'%20OR%201=1%20--/llm-billing-mode",
    "absolute-form target": b"http://evil.example/etc/passwd",
}


@pytest.mark.parametrize("target", RAW_TARGETS.values(), ids=list(RAW_TARGETS))
def test_real_server_answers_hostile_targets_with_a_4xx_and_no_file(
    real_server: RealServer, target: bytes
) -> None:
    request = request_bytes(
        "GET", target, [(b"Authorization", f"Bearer {real_server.seeded.token}".encode())]
    )
    received = exchange(real_server.process.port, request)
    status, _, body = parse_head(received)
    assert 400 <= status < 500, received[:300]
    assert b"root:" not in body
    assert still_serving_with_clean_logs(real_server) > 0


# --- the CLI's paths ------------------------------------------------------------------------------

SECRET_LINE = f"api_key: {HOSTILE}\nroot:x:0:0:root:/root:/bin/bash\n"


@dataclass(frozen=True)
class CliStore:
    """A migrated SQLite store with one org, and a file the CLI must never echo or change."""

    folder: Path
    database_url: str
    key_ring: str
    org_id: str
    secret: Path

    def rows(self) -> dict[str, int]:
        return rows_at(self.database_url)


@pytest.fixture(scope="module")
def cli_store(tmp_path_factory: pytest.TempPathFactory) -> CliStore:
    folder = tmp_path_factory.mktemp("hostile-cli")
    database_url = f"sqlite:///{folder / 'store.sqlite3'}"
    key_ring = KeyRing.new_key_text(1)
    with ServiceContext(
        open_store(database_url),
        DeploymentInputs(proxy=SAAS_PROXY, org_default=None),
        built_in_registry(),
        key_ring_loader=lambda: KeyRing.parse(key_ring),
    ) as context:
        migrate.upgrade(context.store)
        org_id = str(admin.create_org(context, "acme").id)
    secret = folder / "secret.txt"
    secret.write_text(SECRET_LINE)
    (folder / "policy.yaml").write_text(json.dumps(POLICY))
    return CliStore(folder, database_url, key_ring, org_id, secret)


@dataclass(frozen=True)
class CliRun:
    exit_code: int
    stdout: str
    stderr: str


def run_cli(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    folder: Path,
    env: dict[str, str],
    *args: str,
    stdin: str = "value\n",
) -> CliRun:
    """``llmbilling ARGS`` in this process, through the console script's own entry point
    (``main``: its error boundary, exit codes and one-line errors), in ``folder`` (its
    ``.env`` is read) with exactly ``env`` as the deployment's settings."""
    for name in list(os.environ):
        if name.startswith(("LLMBILLING_", "MOLECULE_")) or name in PROXY_ENV_FIELDS:
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, "argv", ["llmbilling", *args])
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    code = exited.value.code
    return CliRun(code if isinstance(code, int) else 1, captured.out, captured.err)


def _up_to_root(folder: Path) -> str:
    """``../../..`` from ``folder`` up to ``/``."""
    return "../" * len(folder.resolve().parts)


CLI_ATTACKS = [
    ("policy", "check", "{up}etc/passwd"),
    ("registry", "check", "/etc/passwd"),
    ("registry", "check", "/etc"),
    ("registry", "check", "{secret}"),
    ("policy", "check", "/no/such/../../file"),
    ("explain", "{up}etc/passwd"),
    ("explain", "{secret}"),
    ("whatif", "--policy", "{secret}"),
    ("whatif", "--registry", "{up}etc/passwd"),
    ("whatif", "--policy", "{policy}", "--out", "{secret}"),
    ("whatif", "--policy", "{policy}", "--out", "/dev/null/report"),
    ("workspace", "list", "--database-url", "sqlite:///{secret}/store.sqlite3"),
    ("workspace", "show", SQL),
    ("org", "set-default", SQL_ID, "byok"),
    ("secrets", "set", "../../etc/passwd", "--org", "{org}"),
]


@pytest.mark.parametrize("args", CLI_ATTACKS, ids=[" ".join(args) for args in CLI_ATTACKS])
def test_cli_path_and_id_arguments_fail_in_one_line_storing_and_echoing_nothing(
    cli_store: CliStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
) -> None:
    digest = hashlib.sha256(cli_store.secret.read_bytes()).hexdigest()
    before = cli_store.rows()
    argv = [
        arg.replace("{up}", _up_to_root(cli_store.folder))
        .replace("{secret}", str(cli_store.secret))
        .replace("{policy}", str(cli_store.folder / "policy.yaml"))
        .replace("{org}", cli_store.org_id)
        for arg in args
    ]
    env = {
        "LLMBILLING_DATABASE_URL": cli_store.database_url,
        "LLMBILLING_SECRET_KEYS": cli_store.key_ring,
    }

    result = run_cli(monkeypatch, capsys, cli_store.folder, env, *argv)

    assert result.exit_code == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("llmbilling: error: ")
    for text in (result.stdout, result.stderr):
        assert HOSTILE not in text
        assert "root:x" not in text
    assert cli_store.rows() == before
    assert hashlib.sha256(cli_store.secret.read_bytes()).hexdigest() == digest


# Bytes that are not UTF-8 reach Python as lone surrogates (surrogateescape).
NOT_UTF8 = b"acme\xff".decode("utf-8", "surrogateescape")
NOT_UTF8_ATTACKS = [
    (("org", "create", NOT_UTF8), "value\n"),
    (("org", "create", "acme", "--actor", NOT_UTF8), "value\n"),
    (("workspace", "create", "--org", "{org}", "--model", NOT_UTF8), "value\n"),
    (("secrets", "set", "OPENAI_API_KEY", "--org", "{org}"), f"sk-{HOSTILE}-{NOT_UTF8}\n"),
]


@pytest.mark.parametrize(
    ("args", "stdin"),
    NOT_UTF8_ATTACKS,
    ids=["org name", "actor", "workspace model", "secret value on stdin"],
)
def test_cli_input_that_is_not_utf8_fails_in_one_line_storing_nothing(
    cli_store: CliStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    stdin: str,
) -> None:
    before = cli_store.rows()
    env = {
        "LLMBILLING_DATABASE_URL": cli_store.database_url,
        "LLMBILLING_SECRET_KEYS": cli_store.key_ring,
    }
    argv = [arg.replace("{org}", cli_store.org_id) for arg in args]

    result = run_cli(monkeypatch, capsys, cli_store.folder, env, *argv, stdin=stdin)

    assert result.exit_code == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("llmbilling: error: INVALID_INPUT: ")
    assert HOSTILE not in result.stdout + result.stderr
    assert cli_store.rows() == before


def test_the_console_script_answers_a_traversal_in_one_line(tmp_path: Path) -> None:
    """The same boundary through the real executable (a separate process)."""
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET_LINE)
    result = Cli(tmp_path).run("registry", "check", _up_to_root(tmp_path) + str(secret)[1:])
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("llmbilling: error: REGISTRY_INVALID: ")
    assert HOSTILE not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("LLMBILLING_POLICY_PATH", "policy.yaml\x00../../etc/passwd"),
        ("LLMBILLING_DATABASE_URL", "sqlite:///store.sqlite3\x00../../etc/passwd"),
        ("LLMBILLING_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/prod\x00_test"),
    ],
    ids=["policy path", "sqlite url", "postgresql url"],
)
def test_cli_refuses_a_nul_byte_in_a_path_setting_in_one_line(
    cli_store: CliStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    setting: str,
    value: str,
) -> None:
    """argv and the environment cannot carry NUL, but a ``.env`` file can."""
    (tmp_path / ".env").write_bytes(f"{setting}={value}\n".encode())
    env = {
        "LLMBILLING_DATABASE_URL": cli_store.database_url,
        "LLMBILLING_SECRET_KEYS": cli_store.key_ring,
    }
    env.pop(setting, None)

    result = run_cli(monkeypatch, capsys, tmp_path, env, "workspace", "list")

    assert result.exit_code == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("llmbilling: error: ")


def test_a_nul_byte_in_the_registry_path_fails_closed(
    cli_store: CliStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An unloadable registry is an operational fault: decisions fall to the deployment
    default (``registry_unavailable``) instead of the command crashing."""
    with ServiceContext(
        open_store(cli_store.database_url),
        DeploymentInputs(proxy=SAAS_PROXY, org_default=None),
        built_in_registry(),
        key_ring_loader=lambda: KeyRing.parse(cli_store.key_ring),
    ) as context:
        workspace = admin.create_workspace(
            context, cli_store.org_id, runtime="codex", model="gpt-5.5"
        )
    (tmp_path / ".env").write_bytes(b"LLMBILLING_REGISTRY_PATH=registry.yaml\x00x\n")
    env = {
        "LLMBILLING_DATABASE_URL": cli_store.database_url,
        "LLMBILLING_SECRET_KEYS": cli_store.key_ring,
        "MOLECULE_LLM_BASE_URL": "https://proxy.test/v1",
        "MOLECULE_LLM_USAGE_TOKEN": "usage-token",
    }

    result = run_cli(
        monkeypatch, capsys, tmp_path, env, "workspace", "show", str(workspace.id), "--json"
    )

    assert result.exit_code == 0, result.stderr
    decision = json.loads(result.stdout)["decision"]
    assert (decision["mode"], decision["source"]) == ("platform_managed", "derived_default")
    assert decision["derivation"]["outcome"] == "registry_unavailable"
