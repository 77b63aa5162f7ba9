"""The decision GET over HTTP against a no-op route of the same app, same server, same load.

For SQLite (a temp file) and PostgreSQL (a fresh database on --postgres-url, dropped
afterwards): migrate, seed a fleet (``seed_fleet``, seed 7), create an admin token, then serve
the app in a subprocess on 127.0.0.1 exactly as ``llmbilling serve`` does: its JSON logging
(stderr, here a file), settings from the environment, ``create_app``, and its ``run_server``
(uvicorn, one worker, uvloop and httptools when installed, no access log, ``gc.freeze``).

The one addition is the no-op route ``GET /bench/noop/{workspace_id}``, in a router placed
right after the decision GET's: the same path shape (a UUID path parameter), the same
middleware (request id, metrics, the JSON ``request`` log line) and the same bearer-token
dependency, so a real token is checked against the store on both; its ``async`` handler
returns ``{"ok": true}``. The same token dependency is chosen because every ``/v1`` route pays
for it: the ratio then prices what the decision itself adds to an authenticated request (the
workspace read, the core, the ETag, the JSON record), not the token check.

A load generator in a second process (asyncio on raw sockets, HTTP/1.1 keep-alive, uvloop)
holds --concurrency connections, each sending its next request as soon as the previous answer
is in (closed loop), cycling over the seeded workspace ids with ``Authorization: Bearer``.
After a 2 s warm-up of each route, --rounds rounds alternate the two routes (which goes first
alternates too), --seconds each. Every answer must be a 200, and the server must log no error.
For each route: p50 and p99 of every request's latency (request written to last body byte),
pooled over its rounds, requests/s over its rounds, and the server process's CPU time per
request (/proc; the machine is shared, CPU per request is the steadier figure). Per engine:
decision p99 / no-op p99. The last line is the worst engine's: ``http_p99_ratio: X.XX``
(target <= 1.5; and >= 2,000 decisions/s). A third route rides the same rounds: the OFREP
single evaluation ``POST /ofrep/v1/evaluate/flags/llm-billing-mode`` with the workspace as
``targetingKey`` (issue 16), its p99 over the no-op's printed per engine and, worst engine,
as ``ofrep_p99_ratio: X.XX`` (goal <= 1.5).

Throughput and staleness (issue 17), for a platform's access pattern (every workspace's agent
reads its decision, again and again): before the warm-up, a first pass reads every seeded
workspace once, each connection taking its share (every answer a 200, excluded from the rounds'
figures), and its decisions/s is printed as the cold figure (a server's first read of a
workspace reads the store); the rounds' decision GETs/s at --concurrency is the warm figure
(decision inputs are then in memory, on both engines, except each entry's re-read after its
300 s maximum age, which the rounds include). The lines ``decisions_per_second_cold:`` per
engine, then one ``decisions_per_second:``, PostgreSQL's warm figure (SQLite's when PostgreSQL
is skipped), labelled. Staleness is measured against a second server (a
replica on the same database, started after the load): --staleness-samples times, a workspace
is read through the replica (so a replica that keeps decision inputs in memory holds it), its
override is PUT through the first server, and the replica is polled (keep-alive, back to back)
until it answers the new mode; the time from the PUT's answer (the commit is acknowledged) to
the first answer with the new mode is one sample: ``staleness_ms:`` p50, p99 and max (one
poll's round trip included). --workspaces is the fleet the load cycles over.

    .venv/bin/python bench/decision_http.py [--workspaces 10000] [--concurrency 32] [--rounds 5]
        [--seconds 5] [--postgres-url postgresql://postgres@127.0.0.1:5432/test]

The server process is started, awaited, stopped and its log read through the reliability tests'
``ServerProcess`` (``tests/reliability/servers.py``: the environment without any deployment
setting of the caller's, ``tests/environment.py``), with this file's serve role as its command.
Run as a script, this file puts the repository root on ``sys.path`` (pytest's ``pythonpath``
does the same for the tests) so that ``tests`` imports.
"""

# ruff: noqa: E402 (the imports below must follow the sys.path fix)
from __future__ import annotations

import sys
from pathlib import Path

# `python bench/decision_http.py` puts bench/ on sys.path, not the repository root.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import argparse
import asyncio
import importlib.util
import json
import os
import random
import socket
import subprocess
import tempfile
import time
import uuid
from array import array
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import httpx
from fastapi import APIRouter, FastAPI
from fastapi import Path as PathParam
from sqlalchemy import create_engine, text
from sqlalchemy import select as sql_select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from starlette.responses import JSONResponse, Response
from tests.reliability.servers import ServerProcess

from llmbilling.api.app import create_app
from llmbilling.api.dependencies import Caller
from llmbilling.api.observability import configure_logging
from llmbilling.cli.serve_command import run_server
from llmbilling.config.registry import built_in_registry
from llmbilling.config.settings import Settings
from llmbilling.core.provisioning import ProxySettings
from llmbilling.service.context import DeploymentInputs, ServiceContext
from llmbilling.service.tokens import Scope, create_token
from llmbilling.store import migrate
from llmbilling.store.crypto import KeyRing
from llmbilling.store.engine import open_store
from llmbilling.store.seed import seed_fleet
from llmbilling.store.tables import workspaces

PROXY = ProxySettings(base_url="https://proxy.example/v1", usage_token="bench-usage-token")
TOKEN_ENV = "LLMBILLING_BENCH_TOKEN"
NOOP_PREFIX = "/bench/noop/"
ROUTES = ("decision", "noop", "ofrep")
OFREP_PATH = "/ofrep/v1/evaluate/flags/llm-billing-mode"
WARMUP_SECONDS = 2.0
REQUEST_TIMEOUT_SECONDS = 10.0


def decision_path(workspace_id: str) -> str:
    return f"/v1/workspaces/{workspace_id}/llm-billing-mode"


def noop_path(workspace_id: str) -> str:
    return f"{NOOP_PREFIX}{workspace_id}"


def ofrep_body(workspace_id: str) -> bytes:
    """The OFREP single evaluation's body for a workspace (docs/OFREP.md)."""
    return json.dumps({"context": {"targetingKey": workspace_id}}).encode()


# --- the server process ----------------------------------------------------------------------


async def noop(
    workspace_id: Annotated[UUID, PathParam(description="Workspace id (UUID).")], caller: Caller
) -> Response:
    """The no-op route: the decision GET's path shape and bearer-token dependency, no work."""
    del workspace_id, caller
    return JSONResponse({"ok": True})


def serve_role(port: str) -> None:
    """``llmbilling serve``'s steps (its JSON logging, settings from the environment, context,
    ``create_app``), plus the no-op route, then its own ``run_server`` on 127.0.0.1:port."""
    configure_logging()
    settings = Settings()
    context = ServiceContext.from_settings(settings)
    try:
        app = create_app(settings, context=context)
        add_noop_route(app)
        context.change_feed.start()  # as `llmbilling serve` does
        run_server(app, host="127.0.0.1", port=int(port))
    finally:
        context.close()


def add_noop_route(app: FastAPI) -> None:
    """The no-op route, in a router of its own placed right after the decision GET's router:
    the router walks the same entries to reach either route (the no-op also passes the
    decision's three routes), rather than every route of the app, console included."""
    router = APIRouter()
    router.add_api_route(NOOP_PREFIX + "{workspace_id}", noop, methods=["GET"])
    app.include_router(router)
    routes = app.router.routes
    template = decision_path("{workspace_id}")
    for index, entry in enumerate(routes[:-1]):
        inner = getattr(entry, "original_router", None)  # FastAPI's included-router entry
        paths = [getattr(route, "path", None) for route in getattr(inner, "routes", [entry])]
        if template in paths:
            routes.insert(index + 1, routes.pop())
            return
    raise RuntimeError("the decision GET's route was not found in the app")


# --- the load generator process --------------------------------------------------------------


class RequestFailedError(Exception):
    pass


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    """Send one request and read its whole answer; its status."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
            break
    if length is None:
        raise RequestFailedError(f"an answer without Content-Length: {head[:200]!r}")
    await reader.readexactly(length)
    return status


@dataclass
class Phase:
    route: str
    seconds: float
    latencies_ns: array[int]
    elapsed: float
    server_cpu: float
    failures: int
    first_failure: str


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; 0.0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # After the command: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _run_phase(
    connections: Sequence[tuple[asyncio.StreamReader, asyncio.StreamWriter]],
    requests: Sequence[bytes],
    route: str,
    seconds: float,
    offset: int,
    server_pid: int,
) -> Phase:
    latencies: array[int] = array("q")
    failures = 0
    first_failure = ""
    clock = time.perf_counter_ns
    cpu_before = _cpu_seconds(server_pid)
    started = clock()
    deadline = started + int(seconds * 1e9)

    async def worker(index: int) -> None:
        nonlocal failures, first_failure
        reader, writer = connections[index]
        position = offset + index * 7919
        while clock() < deadline:
            request = requests[position % len(requests)]
            position += 1
            sent = clock()
            status = await asyncio.wait_for(
                _exchange(reader, writer, request), REQUEST_TIMEOUT_SECONDS
            )
            latencies.append(clock() - sent)
            if status != 200:
                failures += 1
                first_failure = first_failure or f"status {status}"

    await asyncio.gather(*(worker(index) for index in range(len(connections))))
    elapsed = (clock() - started) / 1e9
    server_cpu = _cpu_seconds(server_pid) - cpu_before
    return Phase(route, seconds, latencies, elapsed, server_cpu, failures, first_failure)


async def _load(config: dict[str, Any], token: str) -> dict[str, Any]:
    port: int = config["port"]
    ids: list[str] = config["ids"]
    host_line = f"Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\r\n"
    requests = {
        "decision": [f"GET {decision_path(i)} HTTP/1.1\r\n{host_line}".encode() for i in ids],
        "noop": [f"GET {noop_path(i)} HTTP/1.1\r\n{host_line}".encode() for i in ids],
        "ofrep": [
            f"POST {OFREP_PATH} HTTP/1.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(ofrep_body(i))}\r\n{host_line}".encode()
            + ofrep_body(i)
            for i in ids
        ],
    }
    connections = [
        await asyncio.open_connection("127.0.0.1", port) for _ in range(config["concurrency"])
    ]
    for _reader, writer in connections:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    phases: list[Phase] = []
    offset = 0
    try:
        cold = await _first_pass(connections, requests["decision"])
        for route in ROUTES:  # warm-up: not recorded
            await _run_phase(
                connections, requests[route], route, WARMUP_SECONDS, offset, config["server_pid"]
            )
        for round_index in range(config["rounds"]):
            order = ROUTES if round_index % 2 == 0 else ROUTES[::-1]
            for route in order:
                offset += 104_729
                phases.append(
                    await _run_phase(
                        connections,
                        requests[route],
                        route,
                        config["seconds"],
                        offset,
                        config["server_pid"],
                    )
                )
    finally:
        for _reader, writer in connections:
            writer.close()
    result: dict[str, Any] = {"cold": cold}
    for route in ROUTES:
        mine = [phase for phase in phases if phase.route == route]
        pooled = sorted(value for phase in mine for value in phase.latencies_ns)
        result[route] = {
            "requests": len(pooled),
            "elapsed": sum(phase.elapsed for phase in mine),
            "server_cpu": sum(phase.server_cpu for phase in mine),
            "failures": sum(phase.failures for phase in mine),
            "first_failure": next((p.first_failure for p in mine if p.first_failure), ""),
            "p50_ms": _percentile(pooled, 50) / 1e6,
            "p99_ms": _percentile(pooled, 99) / 1e6,
            "round_p99_ms": [_percentile(sorted(p.latencies_ns), 99) / 1e6 for p in mine],
        }
    return result


async def _first_pass(
    connections: Sequence[tuple[asyncio.StreamReader, asyncio.StreamWriter]],
    requests: Sequence[bytes],
) -> dict[str, Any]:
    """Every request once, each connection sending its share back to back: the requests, the
    seconds and the first answer that was not a 200 (empty when none)."""
    statuses: list[int] = []

    async def worker(index: int) -> None:
        reader, writer = connections[index]
        for request in requests[index :: len(connections)]:
            statuses.append(
                await asyncio.wait_for(_exchange(reader, writer, request), REQUEST_TIMEOUT_SECONDS)
            )

    started = time.perf_counter()
    await asyncio.gather(*(worker(index) for index in range(len(connections))))
    elapsed = time.perf_counter() - started
    failed = next((f"status {status}" for status in statuses if status != 200), "")
    return {"requests": len(statuses), "elapsed": elapsed, "first_failure": failed}


def _percentile(ordered: Sequence[float], percent: float) -> float:
    """Nearest rank."""
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * percent // 100))
    return float(ordered[int(rank) - 1])


def _run_event_loop(main: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it on Linux
        return asyncio.run(main)
    return uvloop.run(main)


def load_role(config_path: str, output_path: str) -> None:
    config = json.loads(Path(config_path).read_text())
    result = _run_event_loop(_load(config, os.environ[TOKEN_ENV]))
    Path(output_path).write_text(json.dumps(result))


# --- the orchestration (this process) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouteFigures:
    p50_ms: float
    p99_ms: float
    per_second: float
    requests: int
    server_cpu_us: float
    round_p99_ms: tuple[float, ...]


def _seed(url: str, key_ring: KeyRing, count: int) -> tuple[list[str], str]:
    """Migrate and seed the fleet; its workspace ids (shuffled) and a new admin token."""
    context = ServiceContext(
        open_store(url),
        DeploymentInputs(proxy=PROXY, org_default=None),
        built_in_registry(),
        key_ring_loader=lambda: key_ring,
    )
    try:
        migrate.upgrade(context.store)
        started = time.perf_counter()
        with context.store.engine.begin() as connection:
            seed_fleet(
                connection,
                workspace_count=count,
                seed=7,
                registry=built_in_registry(),
                key_ring=key_ring,
                stamp=datetime.now(UTC),
            )
            ids = [str(i) for i in connection.execute(sql_select(workspaces.c.id)).scalars()]
            if connection.dialect.name == "postgresql":
                connection.execute(text("ANALYZE"))
        token = create_token(context, scope=Scope.ADMIN, name="bench-http").token
    finally:
        context.close()
    print(f"  seeded {count} workspaces in {time.perf_counter() - started:.1f}s")
    random.Random(11).shuffle(ids)
    return ids, token


def _serve_role(port: int) -> list[str]:
    """This file's serve role on 127.0.0.1:port, as a command line."""
    return [sys.executable, __file__, "--role", "serve", str(port)]


def _start_server(url: str, key_text: str, workdir: Path) -> ServerProcess:
    """The server process, with the bench's store, keys and proxy in its environment (and no
    deployment setting of this one's); returns once ``/healthz`` answers 200 (bounded)."""
    server = ServerProcess(url, workdir, key_ring_text=key_text, proxy=PROXY, command=_serve_role)
    server.start()
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    print(
        f"  server: `llmbilling serve`'s run_server (uvicorn, 1 worker, {loop},"
        f" {http}, no access log, JSON request logs to a file)"
    )
    return server


def _check_routes(port: int, token: str, workspace_id: str) -> None:
    """Both routes answer 200 with the token, and 401 without it (the no-op is guarded)."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10.0) as client:
        for path in (decision_path(workspace_id), noop_path(workspace_id)):
            answer = client.get(path, headers={"Authorization": f"Bearer {token}"})
            if answer.status_code != 200:
                raise RuntimeError(f"GET {path}: {answer.status_code} {answer.text[:300]}")
            if client.get(path).status_code != 401:
                raise RuntimeError(f"GET {path} without a token is not a 401")
        evaluated = client.post(
            OFREP_PATH,
            content=ofrep_body(workspace_id),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        if evaluated.status_code != 200 or evaluated.json().get("key") != "llm-billing-mode":
            raise RuntimeError(f"POST {OFREP_PATH}: {evaluated.status_code} {evaluated.text[:300]}")
        if (
            "mode"
            not in client.get(
                decision_path(workspace_id), headers={"Authorization": f"Bearer {token}"}
            ).json()
        ):
            raise RuntimeError("the decision GET did not answer a decision record")


def _drive(
    server_pid: int,
    port: int,
    token: str,
    ids: list[str],
    arguments: argparse.Namespace,
    workdir: Path,
) -> tuple[dict[str, RouteFigures], float]:
    """Each route's figures over the rounds, and the first pass's decisions/s."""
    config_path, output_path = workdir / "load.json", workdir / "load-result.json"
    config_path.write_text(
        json.dumps(
            {
                "port": port,
                "server_pid": server_pid,
                "ids": ids,
                "concurrency": arguments.concurrency,
                "rounds": arguments.rounds,
                "seconds": arguments.seconds,
            }
        )
    )
    rounds_seconds = len(ROUTES) * (WARMUP_SECONDS + arguments.rounds * arguments.seconds)
    bound = rounds_seconds + len(ids) / 20 + 60  # the first pass at >= 20 decisions/s
    subprocess.run(
        [sys.executable, __file__, "--role", "load", str(config_path), str(output_path)],
        env={**os.environ, TOKEN_ENV: token},  # never on a command line
        stdin=subprocess.DEVNULL,
        check=True,
        timeout=bound,
    )
    result = json.loads(output_path.read_text())
    cold = result["cold"]
    if cold["first_failure"]:
        raise RuntimeError(f"first pass: an answer was not 200 ({cold['first_failure']})")
    figures: dict[str, RouteFigures] = {}
    for route in ROUTES:
        found = result[route]
        if found["failures"]:
            raise RuntimeError(
                f"{route}: {found['failures']} answers were not 200 ({found['first_failure']})"
            )
        figures[route] = RouteFigures(
            p50_ms=found["p50_ms"],
            p99_ms=found["p99_ms"],
            per_second=found["requests"] / found["elapsed"],
            requests=found["requests"],
            server_cpu_us=found["server_cpu"] / found["requests"] * 1e6,
            round_p99_ms=tuple(found["round_p99_ms"]),
        )
    return figures, cold["requests"] / cold["elapsed"]


STALENESS_MODES = ("byok", "disabled", "platform_managed")
STALENESS_GIVE_UP_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Staleness:
    """Milliseconds from a write's acknowledgement on one server to its first sight on
    another, over every sample."""

    samples_ms: tuple[float, ...]

    def percentile(self, percent: float) -> float:
        return _percentile(sorted(self.samples_ms), percent)

    def describe(self) -> str:
        return (
            f"p50 {self.percentile(50):.2f} ms  p99 {self.percentile(99):.2f} ms"
            f"  max {max(self.samples_ms):.2f} ms  ({len(self.samples_ms)} writes)"
        )


def _measure_staleness(
    writer_port: int, replica_port: int, token: str, ids: Sequence[str], samples: int
) -> Staleness:
    """Read through the replica, PUT through the writer, poll the replica until it agrees."""
    headers = {"Authorization": f"Bearer {token}"}
    measured: list[float] = []
    with (
        httpx.Client(base_url=f"http://127.0.0.1:{writer_port}", timeout=10.0) as writer,
        httpx.Client(base_url=f"http://127.0.0.1:{replica_port}", timeout=10.0) as replica,
    ):
        for index in range(samples):
            path = decision_path(ids[index % len(ids)])
            before = replica.get(path, headers=headers).json()["workspace_override"]
            mode = next(m for m in STALENESS_MODES[index % 3 :] + STALENESS_MODES if m != before)
            written = writer.put(path, headers=headers, json={"mode": mode})
            acknowledged = time.perf_counter()
            if written.status_code != 200:
                raise RuntimeError(f"PUT {path}: {written.status_code} {written.text[:300]}")
            while replica.get(path, headers=headers).json()["workspace_override"] != mode:
                if time.perf_counter() - acknowledged > STALENESS_GIVE_UP_SECONDS:
                    raise RuntimeError(f"the replica never saw the write to {path}")
            measured.append((time.perf_counter() - acknowledged) * 1000)
    return Staleness(tuple(measured))


@dataclass(frozen=True, slots=True)
class EngineFigures:
    p99_ratio: float
    decisions_per_second: float  # warm: the rounds, after every workspace's first read
    cold_decisions_per_second: float  # the first pass: every workspace read once
    staleness: Staleness
    ofrep_p99_ratio: float


def _run(engine: str, url: str, arguments: argparse.Namespace) -> EngineFigures:
    print(f"{engine}:")
    key_text = KeyRing.new_key_text(1)
    ids, token = _seed(url, KeyRing.parse(key_text), arguments.workspaces)
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        server = _start_server(url, key_text, workdir)
        replica_dir = workdir / "replica"
        replica_dir.mkdir()
        replica = ServerProcess(
            url, replica_dir, key_ring_text=key_text, proxy=PROXY, command=_serve_role
        )
        try:
            assert server.pid is not None
            _check_routes(server.port, token, ids[0])
            figures, cold_per_second = _drive(
                server.pid, server.port, token, ids, arguments, workdir
            )
            replica.start()
            staleness = _measure_staleness(
                server.port, replica.port, token, ids, arguments.staleness_samples
            )
        finally:
            replica.stop()
            server.stop()
        errors = server.log_lines_with('"level": "error"') + replica.log_lines_with(
            '"level": "error"'
        )
    if errors:
        raise RuntimeError(f"the servers logged {errors} errors")
    names = {"decision": "decision GET", "noop": "no-op GET", "ofrep": "OFREP eval"}
    for route in ROUTES:
        found = figures[route]
        rounds = "/".join(f"{value:.1f}" for value in found.round_p99_ms)
        print(
            f"  {names[route]:<12}  p50 {found.p50_ms:6.2f} ms   p99 {found.p99_ms:6.2f} ms"
            f"   {found.per_second:6,.0f} req/s   server CPU {found.server_cpu_us:5.0f} us/req"
            f"   (p99 by round {rounds} ms)"
        )
    decision, noop = figures["decision"], figures["noop"]
    ratio = decision.p99_ms / noop.p99_ms
    print(
        f"  p99 ratio {ratio:.2f}   p50 ratio {decision.p50_ms / noop.p50_ms:.2f}"
        f"   ({arguments.concurrency} connections, {arguments.rounds} x"
        f" {arguments.seconds:g} s per route, interleaved)"
    )
    ofrep = figures["ofrep"]
    print(
        f"  OFREP single evaluation p99 ratio to the no-op {ofrep.p99_ms / noop.p99_ms:.2f}"
        f"   p50 ratio {ofrep.p50_ms / noop.p50_ms:.2f}   (goal <= 1.5)"
    )
    print(
        f"  decisions/s at {arguments.concurrency} connections: cold {cold_per_second:,.0f}"
        f" (first pass, each of {len(ids):,} workspaces read once)"
        f"   warm {decision.per_second:,.0f} (the rounds)"
    )
    print(f"  staleness (write on one server -> seen on a replica): {staleness.describe()}")
    return EngineFigures(
        ratio, decision.per_second, cold_per_second, staleness, ofrep.p99_ms / noop.p99_ms
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workspaces", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--staleness-samples", type=int, default=200)
    parser.add_argument(
        "--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    parser.add_argument("--role", choices=("serve", "load"), help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.role == "serve":
        serve_role(*arguments.paths)
        return
    if arguments.role == "load":
        load_role(*arguments.paths)
        return

    by_engine: dict[str, EngineFigures] = {}
    with tempfile.TemporaryDirectory() as folder:
        sqlite_url = f"sqlite:///{Path(folder) / 'bench.sqlite3'}"
        by_engine["sqlite"] = _run("sqlite", sqlite_url, arguments)

    admin_url = make_url(arguments.postgres_url).set(drivername="postgresql+psycopg")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"llmbilling_bench_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except SQLAlchemyError as error:  # report, and carry on with SQLite alone
        print(f"postgresql: skipped ({type(error).__name__}: {str(error).splitlines()[0]})")
    else:
        try:
            database_url = admin_url.set(database=name).render_as_string(hide_password=False)
            by_engine["postgresql"] = _run("postgresql", database_url, arguments)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
    for engine, found in by_engine.items():
        cold = found.cold_decisions_per_second
        print(f"decisions_per_second_cold: {cold:.0f} ({engine}, first read of each workspace)")
    headline = "postgresql" if "postgresql" in by_engine else "sqlite"
    warm = by_engine[headline].decisions_per_second
    print(
        f"decisions_per_second: {warm:.0f} ({headline}, warm: after every workspace's first read)"
    )
    for engine, found in by_engine.items():
        print(f"staleness_ms: {found.staleness.describe()} ({engine})")
    worst_ofrep = max(found.ofrep_p99_ratio for found in by_engine.values())
    print(f"ofrep_p99_ratio: {worst_ofrep:.2f}")
    print(f"http_p99_ratio: {max(found.p99_ratio for found in by_engine.values()):.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
