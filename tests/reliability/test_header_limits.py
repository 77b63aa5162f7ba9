"""The request head limit on a real ``llmbilling serve``, over raw sockets: a request line and
headers over 32 KiB, or more than 100 header fields, are refused with a 431 problem
(``HEADERS_TOO_LARGE``) and the connection closed; a head just under either bound is served.

A 64 MB header streamed at the server is refused while it is still arriving, and the server's
peak memory (``VmHWM``) grows by far less than the header: the protocol never holds it. After
each refusal the server still serves, its log is clean, and ``/metrics`` counts the refusals.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.reliability.hostile_harness import (
    RealServer,
    exchange,
    parse_head,
    real_server_on_sqlite,
    request_bytes,
    still_serving_with_clean_logs,
)

from llmbilling.api.limits import MAX_REQUEST_HEAD_BYTES, MAX_REQUEST_HEADERS

HUGE_HEADER_BYTES = 64 * 1024 * 1024
# Generous: the server may hold the limit plus a read or two of the header, never the header.
PEAK_GROWTH_BOUND = 16 * 1024 * 1024
SEND_PIECE = 64 * 1024


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    with real_server_on_sqlite(tmp_path_factory.mktemp("header-limits")) as server:
        yield server


def _decision_target(server: RealServer) -> bytes:
    return f"/v1/workspaces/{server.seeded.workspace_ids[0]}/llm-billing-mode".encode()


def _auth(server: RealServer) -> tuple[bytes, bytes]:
    return (b"Authorization", f"Bearer {server.seeded.token}".encode())


def _peak_memory_bytes(pid: int) -> int:
    """The process's peak resident set (``VmHWM``), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM line in /proc/<pid>/status")


def _assert_refused_as_too_large(received: bytes) -> None:
    status, headers, body = parse_head(received)
    assert status == 431
    assert (b"content-type", b"application/problem+json") in headers
    assert (b"connection", b"close") in headers
    problem = json.loads(body)
    assert (problem["status"], problem["code"]) == (431, "HEADERS_TOO_LARGE")
    assert str(MAX_REQUEST_HEAD_BYTES) in problem["message"]


def _padding_headers(count: int) -> list[tuple[bytes, bytes]]:
    return [(f"X-Pad-{index}".encode(), b"p") for index in range(count)]


# Each head is over exactly one bound; Host and Authorization count as fields and bytes too.
Build = Callable[[RealServer], bytes]
OVER_THE_LIMIT: dict[str, Build] = {
    "one header of 40 KiB": lambda server: request_bytes(
        "GET", _decision_target(server), [_auth(server), (b"X-Big", b"b" * 40 * 1024)]
    ),
    "a request target of 40 KiB": lambda server: request_bytes(
        "GET", _decision_target(server) + b"?q=" + b"t" * 40 * 1024, [_auth(server)]
    ),
    f"{MAX_REQUEST_HEADERS + 1} header fields": lambda server: request_bytes(
        "GET", _decision_target(server), [_auth(server), *_padding_headers(MAX_REQUEST_HEADERS - 1)]
    ),
}


@pytest.mark.parametrize("build", OVER_THE_LIMIT.values(), ids=list(OVER_THE_LIMIT))
def test_a_head_over_a_bound_is_refused_with_a_431_problem(
    real_server: RealServer, build: Build
) -> None:
    _assert_refused_as_too_large(exchange(real_server.process.port, build(real_server)))
    assert still_serving_with_clean_logs(real_server) > 0


UNDER_THE_LIMIT: dict[str, Build] = {
    "a header filling the head but 1 KiB": lambda server: request_bytes(
        "GET",
        _decision_target(server),
        [_auth(server), (b"X-Big", b"b" * (MAX_REQUEST_HEAD_BYTES - 1024))],
    ),
    f"{MAX_REQUEST_HEADERS} header fields": lambda server: request_bytes(
        "GET", _decision_target(server), [_auth(server), *_padding_headers(MAX_REQUEST_HEADERS - 2)]
    ),
}


@pytest.mark.parametrize("build", UNDER_THE_LIMIT.values(), ids=list(UNDER_THE_LIMIT))
def test_a_head_just_under_the_bounds_is_served(real_server: RealServer, build: Build) -> None:
    status, _, body = parse_head(exchange(real_server.process.port, build(real_server)))
    assert status == 200
    assert json.loads(body)["mode"] == "byok"


def test_a_64_mb_header_is_refused_while_it_arrives_and_never_held(
    real_server: RealServer,
) -> None:
    pid = real_server.process.pid
    assert pid is not None
    peak_before = _peak_memory_bytes(pid)
    head = request_bytes("GET", _decision_target(real_server), [_auth(real_server)])
    start = head.removesuffix(b"\r\n\r\n") + b"\r\nX-Huge: "
    with socket.create_connection(("127.0.0.1", real_server.process.port), timeout=30) as conn:
        sender = threading.Thread(target=_stream_header, args=(conn, start), daemon=True)
        sender.start()
        received = b""
        # The server closes once its answer is out; a reset after it is a close too.
        with contextlib.suppress(ConnectionResetError):
            while chunk := conn.recv(65536):
                received += chunk
        sender.join(timeout=30)
    peak_growth = _peak_memory_bytes(pid) - peak_before
    _assert_refused_as_too_large(received)
    assert peak_growth < PEAK_GROWTH_BOUND, f"peak memory grew by {peak_growth} bytes"
    assert still_serving_with_clean_logs(real_server) > 0


def _stream_header(connection: socket.socket, start: bytes) -> None:
    """Send ``start`` and then 64 MB of header value, until the server stops taking them."""
    piece = b"h" * SEND_PIECE
    with contextlib.suppress(OSError):
        connection.sendall(start)
        for _ in range(HUGE_HEADER_BYTES // SEND_PIECE):
            connection.sendall(piece)


def test_refused_heads_are_counted_in_the_errors_metric(real_server: RealServer) -> None:
    _assert_refused_as_too_large(
        exchange(real_server.process.port, OVER_THE_LIMIT["one header of 40 KiB"](real_server))
    )
    status, _, body = parse_head(
        exchange(real_server.process.port, request_bytes("GET", b"/metrics", []))
    )
    assert status == 200
    assert b'llmbilling_errors_total{code="HEADERS_TOO_LARGE"}' in body
