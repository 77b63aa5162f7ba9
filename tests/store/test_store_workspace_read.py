"""The read path's one SQL statement: everything a decision needs, in one round trip."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event
from tests.store.db_fixtures import ContextFactory, stored_workspace

from llmbilling.service.context import ServiceContext
from llmbilling.service.resolve import resolve_workspace
from llmbilling.store.workspace_read import read_workspace_state


class StatementCounter:
    def __init__(self, engine: Engine) -> None:
        self.statements: list[str] = []
        self._engine = engine
        event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, *args: Any) -> None:
        self.statements.append(args[2])

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._count)


@pytest.fixture
def read_counter(context: ServiceContext) -> Iterator[StatementCounter]:
    counter = StatementCounter(context.store.read_engine)
    yield counter
    counter.close()


@pytest.mark.parametrize(
    "model",
    [
        pytest.param("claude-opus-4-7", id="model-on-the-row"),
        pytest.param(None, id="model-from-secrets"),
    ],
)
def test_resolving_a_workspace_takes_exactly_one_statement(
    context: ServiceContext, read_counter: StatementCounter, model: str | None
) -> None:
    _, workspace_id = stored_workspace(
        context,
        model=model,
        org_secrets={"ANTHROPIC_API_KEY": "sk-org", "MODEL": "gpt-5.5"},
        workspace_secrets={"MOLECULE_MODEL": "claude-opus-4-7", "OPENAI_API_KEY": "sk-ws"},
    )
    resolve_workspace(context, workspace_id)  # connects; first-connect queries are not ours
    read_counter.statements.clear()

    resolve_workspace(context, workspace_id)

    assert len(read_counter.statements) == 1
    assert read_counter.statements[0].lstrip().upper().startswith("SELECT")


def test_the_statement_returns_names_of_both_scopes_and_never_credential_values(
    context: ServiceContext,
) -> None:
    org_id, workspace_id = stored_workspace(
        context,
        org_default="  BYOK ",
        override="disabled",
        runtime="codex",
        model=None,
        org_secrets={"OPENAI_API_KEY": "sk-org", "MODEL": "gpt-5.4"},
        workspace_secrets={"MOLECULE_MODEL": "gpt-5.5", "GEMINI_API_KEY": "sk-ws"},
    )
    with context.store.read_engine.connect() as connection:
        state = read_workspace_state(connection, workspace_id)
    assert state is not None
    assert (state.org_id, state.override, state.runtime, state.model, state.org_default) == (
        org_id,
        "disabled",
        "codex",
        None,
        "  BYOK ",
    )
    assert state.org_secret_names == {"OPENAI_API_KEY", "MODEL"}
    assert state.workspace_secret_names == {"MOLECULE_MODEL", "GEMINI_API_KEY"}
    # Only the sealed model-name secrets travel, and sealed.
    assert {(s.scope, s.name) for s in state.model_secrets} == {
        ("org", "MODEL"),
        ("workspace", "MOLECULE_MODEL"),
    }
    assert all("gpt" not in s.value.ciphertext for s in state.model_secrets)


def test_model_secrets_are_not_read_when_the_row_has_a_model(context: ServiceContext) -> None:
    _, workspace_id = stored_workspace(
        context, model="claude-opus-4-7", workspace_secrets={"MOLECULE_MODEL": "gpt-5.5"}
    )
    with context.store.read_engine.connect() as connection:
        state = read_workspace_state(connection, workspace_id)
    assert state is not None
    assert state.model_secrets == ()


def test_an_unknown_workspace_reads_as_none(context: ServiceContext) -> None:
    with context.store.read_engine.connect() as connection:
        assert read_workspace_state(connection, uuid.uuid4()) is None


def test_a_workspace_without_secrets_has_no_names(make_context: ContextFactory) -> None:
    context = make_context()
    _, workspace_id = stored_workspace(context)
    with context.store.read_engine.connect() as connection:
        state = read_workspace_state(connection, workspace_id)
    assert state is not None
    assert state.secret_names == frozenset()
