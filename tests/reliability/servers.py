"""Real processes for the reliability tests: a throwaway PostgreSQL cluster this test owns (so
it may stop it), ``llmbilling serve`` as a subprocess on 127.0.0.1, and a seeded store.

The reliability tests run the real stores (SQLite file, PostgreSQL) and the real app under
faults, load and hostile input. Nothing here touches the shared PostgreSQL on port 5432 except
through ``tests.store.db_fixtures.PostgresServer`` (a uniquely named database, dropped
afterwards). ``bench/decision_http.py`` starts its server through ``ServerProcess`` too.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn
from uuid import UUID

import httpx
import pytest
from tests.environment import clean_environ
from tests.store.db_fixtures import KEY_RING_TEXT, REQUIRE_POSTGRES, SAAS_PROXY

from llmbilling.config.registry import built_in_registry
from llmbilling.core.provisioning import ProxySettings
from llmbilling.service import admin
from llmbilling.service.context import DeploymentInputs, ServiceContext
from llmbilling.service.tokens import Scope, create_token
from llmbilling.store import migrate
from llmbilling.store.crypto import KeyRing
from llmbilling.store.engine import open_store

SERVER_START_SECONDS = 60.0
SERVER_STOP_SECONDS = 20.0
PG_CTL_SECONDS = 60


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's pick; it is released at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def run_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, produce: Callable[[], str]
) -> str:
    """``produce()`` once per test run, even when pytest-xdist spreads the tests that need it
    over several workers: the first worker to get here runs it and stores its text; the others
    wait on a file lock and read that (pytest-xdist's documented recipe). A scenario that
    fails or skips stores nothing, so the next worker tries it again."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    result = root / f"{name}.json"
    with (root / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if result.exists():
            return result.read_text()
        text = produce()
        result.write_text(text)
        return text


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test for want of PostgreSQL, unless CI requires it (then fail)."""
    if REQUIRE_POSTGRES:
        pytest.fail(f"LLMBILLING_REQUIRE_POSTGRES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


# --- a throwaway PostgreSQL cluster ----------------------------------------------------------


def _postgres_bin() -> Path | None:
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        versions = sorted(
            (entry for entry in root.iterdir() if entry.name.isdigit()),
            key=lambda entry: int(entry.name),
        )
        for version in reversed(versions):
            if (version / "bin" / "initdb").exists():
                return version / "bin"
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class ThrowawayCluster:
    """Its own data directory, port and socket directory; stopped and started at will.

    initdb and the server refuse to run as root, so as root every command runs as the
    ``postgres`` OS user (``runuser``) in a temporary directory it owns.
    """

    def __init__(self, bin_dir: Path, root: Path, port: int, as_postgres: bool) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.port = port
        self._as_postgres = as_postgres

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @classmethod
    @contextmanager
    def running(cls) -> Iterator[ThrowawayCluster]:
        """initdb, start; on exit stop (immediate) and delete everything. Skips (or fails in
        CI) when PostgreSQL's binaries or the ``postgres`` user are missing."""
        bin_dir = _postgres_bin()
        if bin_dir is None:
            skip_or_fail("no PostgreSQL server binaries (initdb) on this machine")
        as_postgres = os.geteuid() == 0
        root = Path(tempfile.mkdtemp(prefix="llmb-pg-"))
        try:
            if as_postgres:
                try:
                    shutil.chown(root, "postgres", "postgres")
                except LookupError:
                    skip_or_fail("running as root and there is no postgres OS user")
            cluster = cls(bin_dir, root, free_port(), as_postgres)
            cluster._run(
                "initdb", "-D", str(cluster.data_dir), "-U", "postgres", "-A", "trust",
                "-E", "UTF8", "--locale=C", "--no-sync",
            )  # fmt: skip
            cluster.start()
            try:
                yield cluster
            finally:
                cluster.stop("immediate", check=False)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_path), "-w",
            "-t", str(PG_CTL_SECONDS), "-o", options, "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast", *, check: bool = True) -> None:
        """Stop (``fast``: disconnect clients, clean shutdown; ``immediate``: like a crash)."""
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-w", "-t", str(PG_CTL_SECONDS), "-m", mode,
            "stop", check=check,
        )  # fmt: skip

    def _run(self, program: str, *args: str, check: bool = True) -> None:
        command = [str(self.bin_dir / program), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        # Output to a file, never a pipe: the postmaster pg_ctl launches must not hold our pipe.
        with (self.root / "pg_ctl.out").open("ab") as out:
            done = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=PG_CTL_SECONDS + 30,
                check=False,
                cwd=self.root,
            )
        if check and done.returncode != 0:
            tail = (self.root / "pg_ctl.out").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{program} failed ({done.returncode}):\n{tail}")


# --- the store and the server ----------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class SeededStore:
    """A migrated store with one org, its workspaces, and an admin token (``repr`` hides it)."""

    database_url: str
    token: str
    org_id: UUID
    workspace_ids: tuple[UUID, ...]

    def __repr__(self) -> str:
        return f"SeededStore(org_id={self.org_id}, workspaces={len(self.workspace_ids)})"


def migrated_context(database_url: str) -> ServiceContext:
    """Migrate the database, then open the test deployment's context on it (SaaS proxy, no
    env org default, the built-in registry, the test key ring)."""
    store = open_store(database_url)
    try:
        migrate.upgrade(store)
    finally:
        store.close()
    return ServiceContext(
        open_store(database_url),
        DeploymentInputs(proxy=SAAS_PROXY, org_default=None),
        built_in_registry(),
        key_ring_loader=lambda: KeyRing.parse(KEY_RING_TEXT),
    )


def seed_store(database_url: str, *, workspaces: int) -> SeededStore:
    """Migrate, then create one org with ``workspaces`` codex/gpt-5.5 workspaces (decided
    ``byok`` from ``derived_provider`` while no override is set) and an admin token."""
    with migrated_context(database_url) as context:
        org = admin.create_org(context, "reliability")
        ids = tuple(
            admin.create_workspace(context, org.id, runtime="codex", model="gpt-5.5").id
            for _ in range(workspaces)
        )
        token = create_token(context, scope=Scope.ADMIN, name="reliability").token
    return SeededStore(database_url, token, org.id, ids)


def server_env(
    database_url: str, *, key_ring_text: str = KEY_RING_TEXT, proxy: ProxySettings = SAAS_PROXY
) -> dict[str, str]:
    """This environment without any deployment setting of ours, plus the test deployment:
    the store, the key ring and the proxy (passed by env, never on a command line)."""
    env = clean_environ()
    env.update(
        LLMBILLING_DATABASE_URL=database_url,
        LLMBILLING_SECRET_KEYS=key_ring_text,
        MOLECULE_LLM_BASE_URL=proxy.base_url or "",
        MOLECULE_LLM_USAGE_TOKEN=proxy.usage_token or "",
    )
    return env


def llmbilling_serve(port: int) -> list[str]:
    """The command line of ``llmbilling serve`` on 127.0.0.1:``port``."""
    script = Path(sys.executable).with_name("llmbilling")
    program = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from llmbilling.cli.app import main; main()"]
    )
    return [*program, "serve", "--host", "127.0.0.1", "--port", str(port)]


@dataclass
class ServerProcess:
    """``llmbilling serve`` on 127.0.0.1:``port``; its JSON logs go to ``log_path`` (appended
    across restarts). The working directory is ``workdir``, so no stray ``.env`` is read.

    The deployment is the test one (``server_env``: the store, ``key_ring_text`` and ``proxy``);
    ``command`` gives the command line for a port (default ``llmbilling serve``; a bench serves
    the same app its own way)."""

    database_url: str
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    key_ring_text: str = KEY_RING_TEXT
    proxy: ProxySettings = SAAS_PROXY
    command: Callable[[int], list[str]] = llmbilling_serve

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start it and wait until ``/healthz`` answers 200 (bounded)."""
        assert not self.alive(), "already running"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(self.port),
                env=server_env(
                    self.database_url, key_ring_text=self.key_ring_text, proxy=self.proxy
                ),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1
        deadline = time.monotonic() + SERVER_START_SECONDS
        with httpx.Client(base_url=self.base_url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if not self.alive():
                    raise RuntimeError(f"the server exited at start:\n{self.log_tail()}")
                try:
                    if client.get("/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(
            f"the server did not answer within {SERVER_START_SECONDS}s:\n{self.log_tail()}"
        )

    def kill(self) -> None:
        """``kill -9``: no shutdown, no flush, no goodbye."""
        if self.process is not None and self.alive():
            os.kill(self.process.pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=SERVER_STOP_SECONDS)

    def stop(self) -> None:
        """SIGTERM (uvicorn's graceful shutdown), then SIGKILL if it lingers."""
        if self.process is None or not self.alive():
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=SERVER_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, characters: int = 4000) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-characters:]

    def log_lines_with(self, *needles: str) -> int:
        """How many log lines contain any of ``needles``."""
        if not self.log_path.exists():
            return 0
        lines = self.log_path.read_text(errors="replace").splitlines()
        return sum(any(needle in line for needle in needles) for line in lines)
