"""OFREP change events (ADR-0008) from real ``llmbilling serve`` processes (docs/OFREP.md):
a stream opened on one process is told to refetch when a decision in its scope changes, on
SQLite through the same process, on PostgreSQL through another process on the same database
(the change feed's ``LISTEN/NOTIFY``). Every event is an OFREP ``sseEvent`` whose data is an
``sseEventData`` of type ``refetchEvaluation``.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from tests.api.ofrep_document import problems_of
from tests.reliability.servers import ServerProcess, seed_store
from tests.store.db_fixtures import KEY_RING_TEXT, SAAS_PROXY, PostgresServer

from llmbilling.api.routes.ofrep import STREAM_LIFETIME_SECONDS
from llmbilling.config.registry import built_in_registry
from llmbilling.service.context import DeploymentInputs, ServiceContext
from llmbilling.service.tokens import list_tokens, revoke_token
from llmbilling.store.crypto import KeyRing
from llmbilling.store.engine import open_store

STREAM = "/ofrep/v1/event-stream"
# Bounds a wait for an event that must come (a failure, not a measurement).
EVENT_SECONDS = 20.0
WRITE_EVERY = 0.3


class EventReader:
    """The events of one open SSE response, parsed per the W3C format."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines

    def next_frame(self) -> dict[str, str]:
        """The next frame's fields (a comment frame as ``{"comment": ...}``)."""
        frame: dict[str, str] = {}
        for line in self._lines:
            if line == "":
                if frame:
                    return frame
                continue
            if line.startswith(":"):
                frame.setdefault("comment", line[1:].strip())
                continue
            name, _, value = line.partition(":")
            frame[name] = frame.get(name, "") + value.removeprefix(" ")
        raise AssertionError("the stream ended")

    def read_to_the_end(self) -> None:
        """Return when the server ends the stream."""
        for _line in self._lines:
            pass

    def next_event(self) -> dict[str, str]:
        """The next frame with data (keep-alive comments skipped), within ``EVENT_SECONDS``."""
        deadline = time.monotonic() + EVENT_SECONDS
        while time.monotonic() < deadline:
            frame = self.next_frame()
            if "data" in frame:
                return frame
        raise AssertionError(f"no event within {EVENT_SECONDS}s")


@contextmanager
def open_stream(base_url: str, token: str) -> Iterator[EventReader]:
    """The stream, once it said it listens (so every change from now on is told)."""
    timeout = httpx.Timeout(10.0, read=EVENT_SECONDS)
    with (
        httpx.Client(base_url=base_url, timeout=timeout) as client,
        client.stream("GET", STREAM, headers={"Authorization": f"Bearer {token}"}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = EventReader(response.iter_lines())
        first = reader.next_frame()
        assert first.get("comment") == "listening", first
        yield reader


def assert_refetch(frame: dict[str, str]) -> None:
    assert problems_of("sseEvent", frame) == []
    data: Any = json.loads(frame["data"])
    assert problems_of("sseEventData", data) == []
    assert frame["event"] == "message"
    assert data == {"type": "refetchEvaluation"}
    assert frame["id"]


def put_override(base_url: str, token: str, workspace_id: UUID, mode: str) -> None:
    response = httpx.put(
        f"{base_url}/v1/workspaces/{workspace_id}/llm-billing-mode",
        json={"mode": mode},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10.0,
    )
    assert response.status_code == 200, response.text


@contextmanager
def writes_until_stopped(base_url: str, token: str, workspace_id: UUID) -> Iterator[None]:
    """Override writes through ``base_url``, one every ``WRITE_EVERY`` seconds, meanwhile."""
    stop = threading.Event()

    def write() -> None:
        modes = itertools.cycle(["disabled", "byok"])
        while not stop.wait(WRITE_EVERY):
            put_override(base_url, token, workspace_id, next(modes))

    writer = threading.Thread(target=write)
    writer.start()
    try:
        yield
    finally:
        stop.set()
        writer.join()


def test_a_write_through_the_same_process_is_told_on_sqlite(tmp_path: Path) -> None:
    seeded = seed_store(f"sqlite:///{tmp_path / 'store.sqlite3'}", workspaces=1)
    server = ServerProcess(seeded.database_url, tmp_path)
    server.start()
    try:
        with open_stream(server.base_url, seeded.token) as events:
            put_override(server.base_url, seeded.token, seeded.workspace_ids[0], "disabled")
            first = events.next_event()
            put_override(server.base_url, seeded.token, seeded.workspace_ids[0], "byok")
            second = events.next_event()
        assert_refetch(first)
        assert_refetch(second)
        assert first["id"] != second["id"]
    finally:
        server.stop()


def test_a_write_through_another_process_is_told_on_postgresql(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    seeded = seed_store(postgres_server.create_database(), workspaces=1)
    (tmp_path / "listening").mkdir()
    (tmp_path / "writing").mkdir()
    listening = ServerProcess(seeded.database_url, tmp_path / "listening")
    writing = ServerProcess(seeded.database_url, tmp_path / "writing")
    listening.start()
    writing.start()
    try:
        with (
            open_stream(listening.base_url, seeded.token) as events,
            writes_until_stopped(writing.base_url, seeded.token, seeded.workspace_ids[0]),
        ):
            # The listener may take a moment to LISTEN, and then tells every stream to
            # refetch once (anything may have changed before): so of two events, at least
            # one is a write committed through the other process.
            assert_refetch(events.next_event())
            assert_refetch(events.next_event())
    finally:
        writing.stop()
        listening.stop()


def test_without_a_token_the_stream_is_401(tmp_path: Path) -> None:
    seeded = seed_store(f"sqlite:///{tmp_path / 'store.sqlite3'}", workspaces=0)
    server = ServerProcess(seeded.database_url, tmp_path)
    server.start()
    try:
        assert httpx.get(f"{server.base_url}{STREAM}", timeout=10.0).status_code == 401
    finally:
        server.stop()


def test_a_stream_ends_by_itself_and_a_revoked_token_cannot_reopen_it(tmp_path: Path) -> None:
    seeded = seed_store(f"sqlite:///{tmp_path / 'store.sqlite3'}", workspaces=0)
    server = ServerProcess(seeded.database_url, tmp_path)
    server.start()
    try:
        opened = time.monotonic()
        with open_stream(server.base_url, seeded.token) as events:
            revoke_every_token(seeded.database_url)
            events.read_to_the_end()
        lasted = time.monotonic() - opened
        reopened = httpx.get(
            f"{server.base_url}{STREAM}",
            headers={"Authorization": f"Bearer {seeded.token}"},
            timeout=10.0,
        )
    finally:
        server.stop()
    assert STREAM_LIFETIME_SECONDS - 1 <= lasted <= STREAM_LIFETIME_SECONDS + EVENT_SECONDS
    assert reopened.status_code == 401


def revoke_every_token(database_url: str) -> None:
    with ServiceContext(
        open_store(database_url),
        DeploymentInputs(proxy=SAAS_PROXY, org_default=None),
        built_in_registry(),
        key_ring_loader=lambda: KeyRing.parse(KEY_RING_TEXT),
    ) as context:
        for token in list_tokens(context):
            revoke_token(context, token.id)
