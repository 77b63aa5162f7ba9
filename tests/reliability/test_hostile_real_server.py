"""Hostile input to a real ``llmbilling serve`` on 127.0.0.1, over raw sockets: what only a
real HTTP parser sees.

A declared gigabyte body is refused with a 413 before it is read (and the connection closed); a
chunked body is refused as soon as it goes over the limit, without waiting for its end; an
injected request id is refused by the parser or replaced, never echoed; hostile request targets
(traversal, encoded or raw NUL, invalid UTF-8, SQL with raw spaces, an absolute-form target)
answer a 4xx and no file. After each, the server still serves, stored nothing, and its JSON log
holds no hostile value, token or forged header and no unhandled error. Harness:
``tests/reliability/hostile_harness.py``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from tests.reliability.hostile_harness import (
    HOSTILE,
    SQL,
    RealServer,
    exchange,
    parse_head,
    real_server_on_sqlite,
    request_bytes,
    still_serving_with_clean_logs,
    tally_printed_at_the_end,
)


@pytest.fixture(scope="module", autouse=True)
def _print_tally() -> Iterator[None]:
    yield from tally_printed_at_the_end("a real llmbilling serve")


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    with real_server_on_sqlite(tmp_path_factory.mktemp("hostile-serve")) as server:
        yield server


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
