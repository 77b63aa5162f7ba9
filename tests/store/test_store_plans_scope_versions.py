"""A plan's observed digests (store/plans.py scope_versions): any row version moving, and any
row inserted or deleted in the scope, changes exactly its family's digest; each family is one
aggregate statement, whatever the scope's size."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import delete, event, insert, update
from tests.store.db_fixtures import stored_workspace

from llmbilling.service import secrets
from llmbilling.service.context import ServiceContext
from llmbilling.store.plans import scope_versions
from llmbilling.store.tables import organizations, workspaces

Scope = tuple[uuid.UUID, uuid.UUID, uuid.UUID]  # org, first workspace, second workspace
Interference = Callable[[ServiceContext, Scope], object]


def _with(context: ServiceContext, statement: Any) -> None:
    with context.store.engine.begin() as connection:
        connection.execute(statement)


def _new_workspace(context: ServiceContext, org: uuid.UUID, **values: Any) -> uuid.UUID:
    workspace = uuid.uuid4()
    stamp = datetime.now(UTC)
    _with(
        context,
        insert(workspaces).values(
            id=workspace, org_id=org, created_at=stamp, updated_at=stamp, **values
        ),
    )
    return workspace


def _bump_override(context: ServiceContext, scope: Scope) -> None:
    _with(
        context,
        update(workspaces)
        .where(workspaces.c.id == scope[1])
        .values(llm_billing_mode="byok", row_version=workspaces.c.row_version + 1),
    )


def _add_workspace(context: ServiceContext, scope: Scope) -> None:
    _new_workspace(context, scope[0])


def _replace_a_workspace(context: ServiceContext, scope: Scope) -> None:
    # Same count, same versions: only which workspaces are there differs.
    _with(context, delete(workspaces).where(workspaces.c.id == scope[2]))
    _new_workspace(context, scope[0])


def _bump_org(context: ServiceContext, scope: Scope) -> None:
    _with(
        context,
        update(organizations)
        .where(organizations.c.id == scope[0])
        .values(llm_billing_mode_default="byok", row_version=organizations.c.row_version + 1),
    )


INTERFERENCES: list[tuple[str, Interference, str]] = [
    ("an override written", _bump_override, "workspaces"),
    ("a workspace added", lambda context, scope: _add_workspace(context, scope), "workspaces"),
    (
        "a workspace deleted",
        lambda context, scope: _with(
            context, delete(workspaces).where(workspaces.c.id == scope[2])
        ),
        "workspaces",
    ),
    ("a workspace replaced by another", _replace_a_workspace, "workspaces"),
    ("the org default written", _bump_org, "orgs"),
    (
        "an org secret added",
        lambda context, scope: secrets.set_secret(context, "org", scope[0], "OPENAI_API_KEY", "k"),
        "secrets",
    ),
    (
        "an org secret rewritten",
        lambda context, scope: secrets.set_secret(
            context, "org", scope[0], "ANTHROPIC_API_KEY", "other"
        ),
        "secrets",
    ),
    (
        "a workspace secret deleted",
        lambda context, scope: secrets.delete_secret(
            context, "workspace", scope[1], "GEMINI_API_KEY"
        ),
        "secrets",
    ),
]


def _scope(context: ServiceContext) -> Scope:
    org, first = stored_workspace(
        context,
        org_secrets={"ANTHROPIC_API_KEY": "sk-one"},
        workspace_secrets={"GEMINI_API_KEY": "g-one"},
    )
    return org, first, _new_workspace(context, org)


def _versions(context: ServiceContext, org: uuid.UUID) -> dict[str, str]:
    with context.store.connection() as connection:
        return scope_versions(connection, org, None)


@pytest.mark.parametrize(
    ("interference", "family"),
    [pytest.param(run, family, id=name) for name, run, family in INTERFERENCES],
)
def test_an_interference_changes_exactly_its_familys_digest(
    context: ServiceContext, interference: Interference, family: str
) -> None:
    scope = _scope(context)
    before = _versions(context, scope[0])
    interference(context, scope)
    after = _versions(context, scope[0])
    assert {name for name in before if before[name] != after[name]} == {family}


def test_the_digests_stay_put_while_nothing_changes_and_ignore_other_orgs(
    context: ServiceContext,
) -> None:
    scope = _scope(context)
    before = _versions(context, scope[0])
    _scope(context)  # another org, its workspaces and secrets
    assert _versions(context, scope[0]) == before


def test_each_family_is_one_statement_whatever_the_scope_size(context: ServiceContext) -> None:
    scope = _scope(context)
    for _ in range(30):
        _new_workspace(context, scope[0])
    statements: list[str] = []

    def count(*arguments: Any) -> None:
        statements.append(arguments[2])

    engine = context.store.read_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        with context.store.connection() as connection:
            scope_versions(connection, scope[0], None)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == 4  # orgs, workspaces, org secrets, workspace secrets
