"""Load generators that record every request they make, bounded in count and time.

- :class:`ThreadLoad`: threads in the test process sending decision GETs and unconditional
  override PUTs; each :class:`Sample` carries the phase the test was in when the request
  started and when its answer arrived.
- The writer process (``python -m tests.reliability.load --base-url ...``): reads a decision's
  ``ETag``, PUTs a mode with ``If-Match`` and a unique ``X-Request-ID``, retries on 412, and
  appends one JSON line per PUT attempt to its output file (flushed per line).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

DECISION_GET = "decision GET"
OVERRIDE_PUT = "override PUT"
MODES = ("platform_managed", "byok", "disabled")
TOKEN_ENV = "LLMBILLING_RELIABILITY_TOKEN"
REQUEST_TIMEOUT_SECONDS = 10.0
NORMAL_SOURCES = frozenset({"workspace_override", "org_default", "derived_provider"})
_WORKSPACE_VERSION = re.compile(r'^"w(\d+)\.')


def decision_path(workspace_id: UUID | str) -> str:
    return f"/v1/workspaces/{workspace_id}/llm-billing-mode"


def answer_label(response: httpx.Response) -> str:
    """What a test asserts about an answer: ``200 <source>[ <error code>]`` for a decision,
    ``<status> <code>`` for a problem, the bare status otherwise."""
    try:
        body = response.json()
    except ValueError:
        return str(response.status_code)
    if not isinstance(body, dict):
        return str(response.status_code)
    if response.status_code == 200 and "source" in body:
        error = body.get("error")
        suffix = f" {error['code']}" if isinstance(error, dict) else ""
        return f"200 {body['source']}{suffix}"
    return f"{response.status_code} {body.get('code', '')}".strip()


# --- threads in the test process (outage) ----------------------------------------------------


class Phases:
    """The test's current phase, read by every load thread."""

    def __init__(self, first: str) -> None:
        self._current = first
        self._lock = threading.Lock()
        self.started_at: dict[str, float] = {first: time.monotonic()}

    @property
    def current(self) -> str:
        with self._lock:
            return self._current

    def enter(self, name: str) -> float:
        with self._lock:
            self._current = name
            self.started_at[name] = time.monotonic()
            return self.started_at[name]


@dataclass(frozen=True, slots=True)
class Sample:
    """One request: its route, the phase at its start and at its answer, what came back."""

    route: str
    phase_at_start: str
    phase_at_end: str
    status: int | None
    label: str
    content_type: str
    started: float
    ended: float

    @property
    def phase(self) -> str:
        """The phase, or ``a→b`` for a request that straddled a transition."""
        if self.phase_at_start == self.phase_at_end:
            return self.phase_at_start
        return f"{self.phase_at_start}→{self.phase_at_end}"

    @property
    def normal_decision(self) -> bool:
        """A decision read from the store: 200, a stored source, no error beside it."""
        source = self.label.removeprefix("200 ")
        return self.status == 200 and source in NORMAL_SOURCES


class ThreadLoad:
    """``readers`` threads GET decisions and ``writers`` threads PUT overrides (no If-Match),
    back to back over keep-alive connections, until :meth:`stop` or ``max_requests`` each."""

    def __init__(
        self,
        base_url: str,
        token: str,
        workspace_ids: Sequence[UUID],
        phases: Phases,
        *,
        readers: int = 3,
        writers: int = 1,
        max_requests: int = 100_000,
    ) -> None:
        self._base_url = base_url
        self._headers = {"Authorization": f"Bearer {token}"}
        self._workspace_ids = list(workspace_ids)
        self._phases = phases
        self._max_requests = max_requests
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._samples: list[Sample] = []
        self._threads = [
            threading.Thread(target=self._run, args=(DECISION_GET, n), daemon=True)
            for n in range(readers)
        ] + [
            threading.Thread(target=self._run, args=(OVERRIDE_PUT, n), daemon=True)
            for n in range(writers)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        stuck = [thread.name for thread in self._threads if thread.is_alive()]
        assert not stuck, f"load threads still running after {timeout}s: {stuck}"

    def samples(self) -> list[Sample]:
        with self._lock:
            return list(self._samples)

    def wait_until(self, condition: Callable[[list[Sample]], bool], timeout: float) -> bool:
        """Poll the samples until ``condition`` holds (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition(self.samples()):
                return True
            time.sleep(0.05)
        return condition(self.samples())

    def _run(self, route: str, number: int) -> None:
        rng = random.Random(number)
        with httpx.Client(
            base_url=self._base_url, headers=self._headers, timeout=REQUEST_TIMEOUT_SECONDS
        ) as client:
            for count in range(self._max_requests):
                if self._stop.is_set():
                    return
                workspace = rng.choice(self._workspace_ids)
                phase = self._phases.current
                started = time.monotonic()
                try:
                    if route == DECISION_GET:
                        response = client.get(decision_path(workspace))
                    else:
                        mode = MODES[count % len(MODES)]
                        response = client.put(decision_path(workspace), json={"mode": mode})
                except httpx.TransportError as error:
                    status, label, content_type = None, f"no answer: {type(error).__name__}", ""
                else:
                    status, label = response.status_code, answer_label(response)
                    content_type = response.headers.get("content-type", "")
                sample = Sample(
                    route,
                    phase,
                    self._phases.current,
                    status,
                    label,
                    content_type,
                    started,
                    time.monotonic(),
                )
                with self._lock:
                    self._samples.append(sample)
                if status is None:
                    time.sleep(0.05)


def count_by_phase(samples: Sequence[Sample]) -> Counter[tuple[str, str, str]]:
    """(phase, route, answer label) → requests."""
    return Counter((sample.phase, sample.route, sample.label) for sample in samples)


def format_counts(counts: Counter[tuple[str, str, str]], phase_order: Sequence[str]) -> str:
    def order(key: tuple[str, str, str]) -> tuple[int, str, str, str]:
        first = key[0].split("→")[0]
        rank = phase_order.index(first) if first in phase_order else len(phase_order)
        return (rank, *key)

    rows = [f"{'phase':<22} {'route':<13} {'answer':<44} {'count':>7}"]
    rows += [
        f"{p:<22} {r:<13} {a:<44} {counts[(p, r, a)]:>7}" for p, r, a in sorted(counts, key=order)
    ]
    return "\n".join(rows)


# --- the writer process (durability) ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WriteAttempt:
    """One override PUT as its writer saw it. ``outcome``: the HTTP status as text, or
    ``refused`` (never connected: it cannot have reached the server) or ``no_response`` (sent,
    or possibly sent, and no answer came: in flight when the server died)."""

    writer: int
    request_id: str
    workspace_id: str
    if_match: str
    mode: str
    outcome: str
    started: float
    ended: float

    @property
    def acknowledged(self) -> bool:
        return self.outcome.isdigit() and 200 <= int(self.outcome) < 300

    @property
    def base_version(self) -> int:
        """The workspace ``row_version`` the ``If-Match`` tag named."""
        match = _WORKSPACE_VERSION.match(self.if_match)
        assert match, f"not a decision tag: {self.if_match!r}"
        return int(match[1])

    @classmethod
    def from_json(cls, line: str) -> WriteAttempt:
        fields: dict[str, Any] = json.loads(line)
        return cls(**fields)


def read_attempts(paths: Sequence[Path]) -> list[WriteAttempt]:
    """Every complete line of the writers' output files (a torn last line is skipped)."""
    attempts = []
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines(keepends=True):
            if line.endswith("\n"):
                attempts.append(WriteAttempt.from_json(line))
    return attempts


def _write(arguments: argparse.Namespace, token: str) -> None:
    rng = random.Random(arguments.writer)
    workspaces = arguments.workspaces.split(",")
    deadline = time.monotonic() + arguments.seconds
    stop_file = Path(arguments.stop_file)
    sequence = 0
    with (
        Path(arguments.out).open("a", encoding="utf-8") as out,
        httpx.Client(
            base_url=arguments.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=REQUEST_TIMEOUT_SECONDS,
        ) as client,
    ):
        while not stop_file.exists() and time.monotonic() < deadline:
            if sequence >= arguments.max_writes:
                return
            workspace = rng.choice(workspaces)
            for _ in range(arguments.tries):  # a write again after a 412
                try:
                    read = client.get(decision_path(workspace))
                except httpx.TransportError:
                    time.sleep(0.05)
                    continue
                etag = read.headers.get("etag")
                if read.status_code != 200 or etag is None:
                    time.sleep(0.05)
                    continue
                # Always a change: a write of the override already stored is answered but not
                # audited and moves no version, and the test's reasoning counts changes.
                mode = rng.choice([mode for mode in MODES if mode != _stored_override(read)])
                sequence += 1
                request_id = f"writer{arguments.writer}-{sequence}"
                started = time.time()
                try:
                    written = client.put(
                        decision_path(workspace),
                        json={"mode": mode},
                        headers={"If-Match": etag, "X-Request-ID": request_id},
                    )
                    outcome = str(written.status_code)
                except httpx.ConnectError:
                    outcome = "refused"
                except httpx.TransportError:
                    outcome = "no_response"
                attempt = WriteAttempt(
                    arguments.writer,
                    request_id,
                    workspace,
                    etag,
                    mode,
                    outcome,
                    started,
                    time.time(),
                )
                out.write(json.dumps(asdict(attempt)) + "\n")
                out.flush()
                if outcome != "412":
                    break


def _stored_override(read: httpx.Response) -> str | None:
    record = read.json()
    return str(record["mode"]) if record["source"] == "workspace_override" else None


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="One durability writer (token in $" + TOKEN_ENV)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--workspaces", required=True, help="comma-separated workspace ids")
    parser.add_argument("--writer", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--max-writes", type=int, default=100_000)
    parser.add_argument("--tries", type=int, default=50)
    _write(parser.parse_args(argv), os.environ[TOKEN_ENV])


if __name__ == "__main__":
    main()
