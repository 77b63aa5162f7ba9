"""The event loop's reader: the same rows as the sync read, one reader per loop, and a
PostgreSQL connection the server dropped is replaced without a failed read."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import bindparam, select
from sqlalchemy.exc import DBAPIError
from tests.store.db_fixtures import (
    ContextFactory,
    stored_workspace,
    terminate_other_connections,
)

from llmbilling.service.context import ServiceContext
from llmbilling.service.resolve import StoredDecision, read_decision, read_decision_on_loop
from llmbilling.store.engine import open_store
from llmbilling.store.loop_reader import LoopReader, LoopReaders, open_loop_reader
from llmbilling.store.tables import api_tokens
from llmbilling.store.workspace_read import read_workspace_state, read_workspace_state_on_loop


def test_the_loop_read_returns_the_sync_reads_state(context: ServiceContext) -> None:
    _, workspace_id = stored_workspace(
        context,
        model=None,
        org_secrets={"ANTHROPIC_API_KEY": "sk-ant-SENTINEL", "MODEL": "claude-opus-4-7"},
        workspace_secrets={"MOLECULE_MODEL": "claude-sonnet-4-5"},
    )
    unknown = uuid.uuid4()

    async def on_loop() -> list[object]:
        reader = open_loop_reader(context.store)
        try:
            return [await read_workspace_state_on_loop(reader, i) for i in (workspace_id, unknown)]
        finally:
            await reader.close()

    with context.store.read_engine.connect() as connection:
        expected = [read_workspace_state(connection, i) for i in (workspace_id, unknown)]
    assert asyncio.run(on_loop()) == expected
    assert expected[0] is not None
    assert expected[1] is None


def test_the_loop_decision_is_the_sync_decision(context: ServiceContext) -> None:
    _, workspace_id = stored_workspace(context, org_default="byok")

    async def on_loop() -> object:
        try:
            return await read_decision_on_loop(context, workspace_id)
        finally:
            await context.close_loop_reader()

    assert asyncio.run(on_loop()) == read_decision(context, workspace_id)


def test_a_postgres_connection_the_server_dropped_is_replaced_without_a_failed_read(
    context: ServiceContext,
) -> None:
    if context.store.dialect != "postgresql":
        pytest.skip("a server-side connection drop exists on PostgreSQL only")
    _, workspace_id = stored_workspace(context)

    async def read_twice_across_a_drop() -> tuple[object, object]:
        reader = open_loop_reader(context.store)
        try:
            before = await read_workspace_state_on_loop(reader, workspace_id)
            # Every backend of the database goes, the reader's pooled connection with them.
            terminate_other_connections(context.store.url.render_as_string(hide_password=False))
            after = await read_workspace_state_on_loop(reader, workspace_id)
            return before, after
        finally:
            await reader.close()

    before, after = asyncio.run(read_twice_across_a_drop())
    assert before is not None
    assert after == before


def test_an_unreachable_store_fails_the_loop_read_and_the_decision_falls_back(
    make_context: ContextFactory, context: ServiceContext
) -> None:
    if context.store.dialect != "postgresql":
        pytest.skip("an unreachable server exists on PostgreSQL only")
    down = make_context(database_url="postgresql://postgres@127.0.0.1:9/none")
    workspace_id = uuid.uuid4()

    async def on_loop() -> StoredDecision:
        reader = open_loop_reader(down.store)
        try:
            with pytest.raises(DBAPIError):
                await read_workspace_state_on_loop(reader, workspace_id)
            return await read_decision_on_loop(down, workspace_id)
        finally:
            await reader.close()
            await down.close_loop_reader()

    stored = asyncio.run(on_loop())
    assert stored == read_decision(down, workspace_id)
    assert stored.state is None


def test_each_event_loop_gets_a_reader_of_its_own_until_it_closes_it(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/store.sqlite3")
    readers = LoopReaders(store)

    async def twice_then_close() -> tuple[LoopReader, LoopReader, LoopReader]:
        first, again = readers.current(), readers.current()
        await readers.close()
        return first, again, readers.current()

    try:
        first, again, after_close = asyncio.run(twice_then_close())
        other_loop, _, _ = asyncio.run(twice_then_close())
    finally:
        store.close()
    assert first is again
    assert after_close is not first
    assert other_loop is not first


def test_the_sqlite_reader_refuses_a_parameter_it_cannot_bind_as_sqlalchemy_stores_it(
    tmp_path: Path,
) -> None:
    store = open_store(f"sqlite:///{tmp_path}/store.sqlite3")
    statement = select(api_tokens.c.id).where(api_tokens.c.created_at > bindparam("since"))

    async def read() -> object:
        reader = open_loop_reader(store)
        try:
            return await reader.first(statement, {"since": datetime.now(UTC)})
        finally:
            await reader.close()

    try:
        with pytest.raises(TypeError, match="binds text, integers and UUIDs"):
            asyncio.run(read())
    finally:
        store.close()
