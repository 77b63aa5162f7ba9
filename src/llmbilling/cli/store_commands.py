"""``llmbilling db upgrade|current`` and ``llmbilling demo seed``."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from llmbilling.cli.store_options import (
    ActorOption,
    DatabaseUrlOption,
    audit_context,
    console,
    service_context,
    settings_from_flags,
)
from llmbilling.service.demo import seed_demo_fleet
from llmbilling.store import migrate
from llmbilling.store.engine import open_store, render_url

db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
demo_app = typer.Typer(help="Synthetic data for demos and benchmarks.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseUrlOption = None) -> None:
    """Run the migrations up to the newest revision (a SQLite file is created if missing)."""
    store = open_store(settings_from_flags(database_url).database_url)
    try:
        migrate.upgrade(store)
        revision = migrate.current_revision(store)
    finally:
        store.close()
    console.print(f"{render_url(store.url)} is at revision {revision}")


@db_app.command("current")
def db_current(database_url: DatabaseUrlOption = None) -> None:
    """Print the revision the database is at, and the newest one."""
    store = open_store(settings_from_flags(database_url).database_url, create=False)
    try:
        revision = migrate.current_revision(store)
    finally:
        store.close()
    console.print(f"current: {revision or '(empty)'}  head: {migrate.head_revision()}")


@demo_app.command("seed")
def demo_seed(
    workspaces: Annotated[int, typer.Option("--workspaces", help="How many workspaces.")],
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same fleet.")] = 1,
    actor: ActorOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Fill the store with a realistic synthetic fleet (orgs, workspaces, secrets)."""
    started = time.perf_counter()
    with service_context(database_url) as context:
        counts = seed_demo_fleet(
            context, workspace_count=workspaces, seed=seed, audit_context=audit_context(actor)
        )
    elapsed = time.perf_counter() - started
    console.print(
        f"seeded {counts.workspaces} workspaces in {counts.orgs} orgs"
        f" ({counts.org_secrets} org secrets, {counts.workspace_secrets} workspace secrets)"
        f" with seed {seed} in {elapsed:.1f}s"
    )
