"""Real databases for the store and service tests: a SQLite file and a PostgreSQL database.

Each test session (each xdist worker) creates its own uniquely named PostgreSQL database(s)
and drops them at the end, so parallel runs never collide. Without a reachable server the
PostgreSQL half skips with the reason, unless ``LLMBILLING_REQUIRE_POSTGRES=1`` (CI), where it
fails instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from llmbilling.config.registry import built_in_registry
from llmbilling.core.provisioning import ProxySettings
from llmbilling.service.context import DeploymentInputs, ServiceContext
from llmbilling.store import migrate
from llmbilling.store.crypto import KeyRing
from llmbilling.store.engine import Store, open_store

POSTGRES_ADMIN_URL = os.environ.get(
    "LLMBILLING_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("LLMBILLING_REQUIRE_POSTGRES") == "1"
ENGINES = ("sqlite", "postgresql")

KEY_RING_TEXT = KeyRing.new_key_text(1)
SAAS_PROXY = ProxySettings(
    base_url="https://proxy.example/v1",
    usage_token="usage-token-SENTINEL",
    anthropic_base_url="https://proxy.example/anthropic",
)
SELF_HOST = ProxySettings()

ContextFactory = Callable[..., ServiceContext]
DatabaseFactory = Callable[[], str]


class PostgresServer:
    """Creates and drops uniquely named databases on the test server."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = make_url(admin_url).set(drivername="postgresql+psycopg")
        self._admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        self.created: list[str] = []

    def check(self) -> str | None:
        """None when reachable, else why not."""
        try:
            with self._admin.connect() as connection:
                connection.execute(text("SELECT 1"))
        except OperationalError as error:
            return str(error.orig).splitlines()[0] if error.orig else str(error)
        return None

    def create_database(self) -> str:
        name = f"llmbilling_test_{uuid.uuid4().hex[:12]}"
        with self._admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self._admin.connect() as connection:
            for name in self.created:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._admin.dispose()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer(POSTGRES_ADMIN_URL)
    problem = server.check()
    if problem is not None:
        reason = f"PostgreSQL not reachable at {server.admin_url.render_as_string()}: {problem}"
        if REQUIRE_POSTGRES:
            pytest.fail(f"LLMBILLING_REQUIRE_POSTGRES=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    yield server
    server.drop_all()


def _new_database(
    engine: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    if engine == "sqlite":
        folder: Path = tmp_path_factory.mktemp("sqlite")
        return f"sqlite:///{folder / 'store.sqlite3'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()


@pytest.fixture(scope="session", params=ENGINES)
def engine_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated database for this session, shared by the tests of one engine.

    Tests create their own orgs and workspaces (fresh UUIDs), so sharing is safe.
    """
    url = _new_database(request.param, request, tmp_path_factory)
    store = open_store(url)
    try:
        migrate.upgrade(store)
    finally:
        store.close()
    return url


@pytest.fixture(params=ENGINES)
def new_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> DatabaseFactory:
    """Makes empty (unmigrated) databases of one engine, for tests that need a clean slate."""
    engine: str = request.param
    return lambda: _new_database(engine, request, tmp_path_factory)


@pytest.fixture
def make_context(engine_url: str) -> Iterator[ContextFactory]:
    """Service contexts on the session database; SaaS proxy and the test key ring by default."""
    opened: list[ServiceContext] = []

    def make(
        *,
        proxy: ProxySettings = SAAS_PROXY,
        org_default: str | None = None,
        key_ring_text: str = KEY_RING_TEXT,
        database_url: str | None = None,
        pool_pre_ping: bool = True,
    ) -> ServiceContext:
        store: Store = open_store(database_url or engine_url, pool_pre_ping=pool_pre_ping)
        context = ServiceContext(
            store,
            DeploymentInputs(proxy=proxy, org_default=org_default),
            built_in_registry(),
            key_ring_loader=lambda: KeyRing.parse(key_ring_text),
        )
        opened.append(context)
        return context

    yield make
    for context in opened:
        context.close()


@pytest.fixture
def context(make_context: ContextFactory) -> ServiceContext:
    return make_context()


def stored_workspace(
    context: ServiceContext,
    *,
    org_default: str | None = None,
    override: str | None = None,
    runtime: str = "claude-code",
    model: str | None = "claude-opus-4-7",
    org_secrets: dict[str, str] | None = None,
    workspace_secrets: dict[str, str] | None = None,
) -> tuple[uuid.UUID, uuid.UUID]:
    """Create an org and one workspace through the service layer; returns (org id, ws id).

    ``org_default`` is written raw, as another tool might (garbled values included).
    """
    from sqlalchemy import update

    from llmbilling.service import admin, secrets
    from llmbilling.store.tables import organizations

    org = admin.create_org(context, "test-org")
    if org_default is not None:
        with context.store.engine.begin() as connection:
            connection.execute(
                update(organizations)
                .where(organizations.c.id == org.id)
                .values(llm_billing_mode_default=org_default)
            )
    workspace = admin.create_workspace(
        context, org.id, runtime=runtime, model=model, override=override
    )
    for name, value in (org_secrets or {}).items():
        secrets.set_secret(context, "org", org.id, name, value)
    for name, value in (workspace_secrets or {}).items():
        secrets.set_secret(context, "workspace", workspace.id, name, value)
    return org.id, workspace.id


def terminate_other_connections(database_url: str) -> None:
    """Kill every server process of this database but the one asking."""
    database = make_url(database_url).database
    admin_engine = create_engine(
        make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+psycopg"),
        isolation_level="AUTOCOMMIT",
    )
    try:
        with admin_engine.connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = :database AND pid <> pg_backend_pid()"
                ),
                {"database": database},
            )
    finally:
        admin_engine.dispose()
