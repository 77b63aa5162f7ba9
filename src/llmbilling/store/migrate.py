"""Run the shipped Alembic migrations on a store, without an ``alembic.ini``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import SQLAlchemyError

from llmbilling.errors import SchemaNotCurrentError, StoreUnavailableError
from llmbilling.store import migrations
from llmbilling.store.engine import Store, describe_database_error, render_url

MIGRATIONS_DIR = Path(migrations.__file__).parent


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None  # the package ships at least one revision
    return head


def current_revision(store: Store) -> str | None:
    """The revision the database is at; None for an empty database."""
    try:
        with store.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as error:
        raise StoreUnavailableError(describe_database_error(error, store.url)) from None


def upgrade(store: Store, revision: str = "head") -> None:
    _run(store, "upgrade", revision)


def downgrade(store: Store, revision: str = "base") -> None:
    _run(store, "downgrade", revision)


def _run(store: Store, direction: str, revision: str) -> None:
    config = _config()
    try:
        with store.engine.begin() as connection:
            config.attributes["connection"] = connection
            if direction == "upgrade":
                command.upgrade(config, revision)
            else:
                command.downgrade(config, revision)
    except SQLAlchemyError as error:
        raise StoreUnavailableError(describe_database_error(error, store.url)) from None


def ensure_schema(store: Store, *, auto_migrate: bool) -> None:
    """Make sure the schema is current: upgrade it when allowed, else say how to.

    Raises :class:`SchemaNotCurrentError` when behind and ``auto_migrate`` is off.
    """
    current = current_revision(store)
    head = head_revision()
    if current == head:
        return
    if auto_migrate:
        upgrade(store)
        return
    at = f"at {current}" if current else "empty"
    raise SchemaNotCurrentError(
        f"the database {render_url(store.url)} is {at}, the code needs {head}:"
        " run `llmbilling db upgrade`"
    )
