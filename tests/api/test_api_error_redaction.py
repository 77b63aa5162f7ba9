"""What a tenant sees of a database failure names no host, port, role, database or file.

A real ``llmbilling serve`` loses its store three ways: PostgreSQL behind a port that closes
(a forwarder this test stops), PostgreSQL refusing the server's role (``NOLOGIN``, sessions
ended), and a SQLite file that can no longer be written (``chattr +i``). Every answer a token
holder can get then — the decision GET record (its ``error``), a write's 503 problem,
``/readyz``, the console's pages — is searched for the host, the port, the role, the database
name and the file path: none may appear. The driver's detail is in the server's log only.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from tests.reliability.load import decision_path
from tests.reliability.servers import SeededStore, ServerProcess, seed_store
from tests.store.db_fixtures import POSTGRES_ADMIN_URL, PostgresServer


class Forwarder:
    """127.0.0.1:<port> → the test PostgreSQL, until :meth:`close` (then the port is closed
    and every forwarded connection cut)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            with self._lock:
                self._sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        # Shut down first: a bare close leaves a thread blocked in accept() listening.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for connection in self._sockets:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
                connection.close()


def _admin(statement: str) -> None:
    engine = create_engine(
        make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+psycopg"),
        isolation_level="AUTOCOMMIT",
    )
    try:
        with engine.connect() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()


@dataclass
class Outage:
    """A store that works at start; ``begin()`` breaks it. ``forbidden`` is what must not
    reach a tenant; ``port`` (when there is one) is matched as a whole number."""

    seeded: SeededStore
    served_url: str
    begin: Callable[[], None]
    forbidden: tuple[str, ...]
    port: int | None


def _postgres_unreachable(server: PostgresServer, _folder: Path) -> Iterator[Outage]:
    url = make_url(server.create_database())
    seeded = seed_store(url.render_as_string(hide_password=False), workspaces=1)
    forwarder = Forwarder((url.host or "127.0.0.1", url.port or 5432))
    served = url.set(port=forwarder.port).render_as_string(hide_password=False)
    try:
        yield Outage(
            seeded,
            served,
            forwarder.close,
            ("127.0.0.1", "postgres", url.database or ""),
            forwarder.port,
        )
    finally:
        forwarder.close()


def _postgres_role_refused(server: PostgresServer, _folder: Path) -> Iterator[Outage]:
    role = f"llmb_role_{uuid.uuid4().hex[:10]}"
    url = make_url(server.create_database())
    database = url.database or ""
    _admin(f'CREATE ROLE "{role}" LOGIN')
    _admin(f'ALTER DATABASE "{database}" OWNER TO "{role}"')
    as_role = url.set(username=role).render_as_string(hide_password=False)
    seeded = seed_store(as_role, workspaces=1)

    def refuse() -> None:
        _admin(f'ALTER ROLE "{role}" NOLOGIN')
        _admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'")

    try:
        yield Outage(seeded, as_role, refuse, ("127.0.0.1", role, database), url.port)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        _admin(f'DROP ROLE IF EXISTS "{role}"')


def _sqlite_unwritable(_server: PostgresServer | None, folder: Path) -> Iterator[Outage]:
    store_folder = folder / "store-folder-SENTINEL"
    database = store_folder / "tenant-store.sqlite3"
    seeded = seed_store(f"sqlite:///{database}", workspaces=1)
    frozen: list[Path] = []

    def freeze() -> None:
        frozen.extend(path for path in (database, Path(f"{database}-wal")) if path.exists())
        frozen.append(store_folder)
        subprocess.run(["chattr", "+i", *map(str, frozen)], check=True, capture_output=True)

    try:
        yield Outage(
            seeded,
            seeded.database_url,
            freeze,
            (str(store_folder), "store-folder-SENTINEL", "tenant-store"),
            None,
        )
    finally:
        if frozen:
            subprocess.run(["chattr", "-i", *map(str, frozen)], check=False)


OUTAGES = {
    "postgres unreachable": _postgres_unreachable,
    "postgres role refused": _postgres_role_refused,
    "sqlite unwritable": _sqlite_unwritable,
}


@pytest.fixture(params=list(OUTAGES))
def outage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Outage]:
    name: str = request.param
    server: PostgresServer | None = None
    if name.startswith("postgres"):
        server = request.getfixturevalue("postgres_server")
    else:
        probe = tmp_path / "probe"
        probe.write_text("x")
        if subprocess.run(["chattr", "+i", str(probe)], check=False).returncode != 0:
            pytest.skip("chattr +i is not available here (needs root on ext4/xfs/btrfs)")
        subprocess.run(["chattr", "-i", str(probe)], check=True)
    yield from OUTAGES[name](server, tmp_path)  # type: ignore[arg-type]


def _tenant_answers(client: httpx.Client, seeded: SeededStore) -> dict[str, httpx.Response]:
    workspace_id = seeded.workspace_ids[0]
    return {
        # From the store (the replica may hold the inputs in memory, and answer from them).
        "decision GET": client.get(
            decision_path(workspace_id), headers={"Cache-Control": "no-cache"}
        ),
        "decision GET, inputs in memory": client.get(decision_path(workspace_id)),
        "override PUT": client.put(decision_path(workspace_id), json={"mode": "byok"}),
        "readyz": client.get("/readyz"),
        "console workspace page": client.get(f"/console/workspaces/{workspace_id}"),
        "console fleet page": client.get(f"/console/orgs/{seeded.org_id}"),
    }


def test_no_tenant_visible_answer_names_the_database_host_port_role_or_file(
    outage: Outage, tmp_path: Path
) -> None:
    seeded = outage.seeded
    server = ServerProcess(outage.served_url, tmp_path)
    server.start()
    try:
        with httpx.Client(
            base_url=server.base_url,
            headers={"Authorization": f"Bearer {seeded.token}"},
            timeout=30.0,
        ) as client:
            # The token and a console session are known before the store goes away.
            assert client.get(decision_path(seeded.workspace_ids[0])).status_code == 200
            client.post(
                "/console/login",
                data={"token": seeded.token},
                headers={"Origin": server.base_url},
            )
            outage.begin()
            answers = _tenant_answers(client, seeded)
    finally:
        server.stop()
    assert answers["override PUT"].status_code == 503
    assert answers["readyz"].status_code == 503
    assert answers["decision GET"].status_code == 200
    if outage.port is not None:
        error = answers["decision GET"].json()["error"]
        assert error["code"] == "OVERRIDE_READ_FAILED"
    for label, response in answers.items():
        shown = response.text
        for forbidden in outage.forbidden:
            assert forbidden not in shown, f"{label} names {forbidden!r}"
        if outage.port is not None:
            # A whole number, not a run of hex digits inside an id.
            port = re.compile(rf"(?<![0-9a-fA-F]){outage.port}(?![0-9a-fA-F])")
            assert port.search(shown) is None, f"{label} names the port"
    assert server.log_lines_with("database failure") > 0
