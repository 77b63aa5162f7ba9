"""Real store outages for API tests: a migrated store to serve from, then the database taken
away under the app (PostgreSQL: dropped; SQLite: the file replaced by a directory, which
neither engine can open)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from tests.store.db_fixtures import KEY_RING_TEXT, POSTGRES_ADMIN_URL, SAAS_PROXY

from llmbilling.config.registry import built_in_registry
from llmbilling.service.context import DeploymentInputs, ServiceContext
from llmbilling.store import migrate
from llmbilling.store.crypto import KeyRing
from llmbilling.store.engine import open_store


def saas_context_on(url: str) -> ServiceContext:
    """A SaaS deployment (metering proxy, no org default) on ``url``, migrated first."""
    store = open_store(url)
    migrate.upgrade(store)
    store.close()
    return ServiceContext(
        open_store(url),
        DeploymentInputs(proxy=SAAS_PROXY, org_default=None),
        built_in_registry(),
        key_ring_loader=lambda: KeyRing.parse(KEY_RING_TEXT),
    )


def take_down(context: ServiceContext, url: str) -> None:
    """Make the database at ``url`` unreachable for good, under ``context``."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        server = create_engine(
            make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+psycopg"),
            isolation_level="AUTOCOMMIT",
        )
        with server.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{parsed.database}" WITH (FORCE)'))
        server.dispose()
        return
    context.store.close()  # SQLite keeps an open file readable; drop the pooled handles
    database = Path(str(parsed.database))
    for leftover in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        leftover.unlink(missing_ok=True)
    database.mkdir()
