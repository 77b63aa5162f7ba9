"""Hostile header and path bytes, sent to the app as raw ASGI calls: the bytes a client library
refuses to send reach the app byte for byte.

A request id that is not plain (CR LF and a forged header, bare LF or CR, NUL, NEL, a
percent-encoded CR LF, a Unicode line separator, SQL, 129 characters) is replaced by a fresh
one, never echoed, and no forged header appears; NUL, CR LF, 100 KiB and invalid UTF-8 bearer
tokens, a NUL or 20,000 tags in ``If-Match``, a declared length over the limit and an
unparseable ``Content-Length`` are refused with their problem and store nothing; a traversal in
the raw path never serves a file. The captured JSON logs hold none of the hostile values or the
token. Harness: ``tests/reliability/hostile_harness.py``.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator

import pytest
from tests.api.api_fixtures import Api
from tests.reliability.hostile_harness import (
    HOSTILE,
    SQL,
    asgi_call,
    scanned_log_lines,
    stored_rows,
    tally_printed_at_the_end,
)


@pytest.fixture(scope="module", autouse=True)
def _print_tally() -> Iterator[None]:
    yield from tally_printed_at_the_end("raw ASGI")


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
        400,
        "INVALID_INPUT",
    ),
    "20,000 tags in If-Match": (
        [(b"authorization", b"Bearer {token}"), (b"if-match", b'"x",' * 20_000)],
        400,
        "INVALID_INPUT",
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
