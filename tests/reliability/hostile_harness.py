"""The harness of the hostile-input tests: what each channel sends hostile input through and
how every case checks that nothing was stored and nothing leaked into a log.

Shared by every channel: the planted values (``HOSTILE`` must never reach a log line), row
counts of every table (``count_rows``: before and after, nothing stored), the JSON-log scan
(``scanned_log_lines``) and the tally of both (printed with ``pytest -s``). Then one harness per
channel: raw ASGI calls (``asgi_call``: header and path bytes a client library will not send),
raw sockets to a real ``llmbilling serve`` (``exchange``, ``parse_head``, ``request_bytes``) and
the CLI run in-process through its console script's entry point (``run_cli``).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.environment import clean_environ
from tests.reliability.servers import SeededStore, ServerProcess, seed_store

from llmbilling.api.limits import MAX_REQUEST_BODY_BYTES
from llmbilling.cli.app import main
from llmbilling.service.context import ServiceContext
from llmbilling.store.engine import Store, open_store
from llmbilling.store.tables import metadata

# Planted in hostile bodies and header values: it must never reach a log line.
HOSTILE = "HOSTILE-SENTINEL-c0ffee"
OVER_LIMIT = MAX_REQUEST_BODY_BYTES + 1
SQL = "' OR 1=1 --"
SQL_ID = "00000000-0000-0000-0000-000000000000' OR '1'='1"
POLICY = {"rungs": ["workspace_override", "derived_provider", "deployment_default"]}
SECRET_LINE = f"api_key: {HOSTILE}\nroot:x:0:0:root:/root:/bin/bash\n"


# --- what every channel checks -------------------------------------------------------------------


@dataclass
class Tally:
    """What the module checked, for the record (printed with ``pytest -s``)."""

    row_counts: int = 0  # tables counted, before and after
    log_lines: int = 0


TALLY = Tally()


def tally_printed_at_the_end(channel: str) -> Iterator[None]:
    """For a module's autouse fixture: count the module's checks from zero, print them after."""
    TALLY.row_counts = TALLY.log_lines = 0
    yield
    print(
        f"\n[reliability] hostile input ({channel}): {TALLY.row_counts} table row counts"
        f" compared, {TALLY.log_lines} log lines scanned, 0 findings"
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


# --- a real llmbilling serve, over raw sockets ----------------------------------------------------


@dataclass
class RealServer:
    process: ServerProcess
    seeded: SeededStore

    def rows(self) -> dict[str, int]:
        return rows_at(self.seeded.database_url)


@contextlib.contextmanager
def real_server_on_sqlite(folder: Path) -> Iterator[RealServer]:
    """A real ``llmbilling serve`` over a seeded one-workspace SQLite store in ``folder``."""
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


# --- the CLI, in this process ---------------------------------------------------------------------


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
    for name in os.environ.keys() - clean_environ().keys():
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


def up_to_root(folder: Path) -> str:
    """``../../..`` from ``folder`` up to ``/``."""
    return "../" * len(folder.resolve().parts)
