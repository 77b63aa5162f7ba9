"""The decision inputs in memory never change an answer: cached and uncached decisions agree
under any sequence of writes, made by this process or another (PostgreSQL: told by the feed;
SQLite: seen through ``PRAGMA data_version``); a lost feed sends every read to the store; a
revocation takes effect at once where it was made and, through the feed, elsewhere."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update
from tests.cli.cli_runner import Cli
from tests.store.db_fixtures import SAAS_PROXY
from tests.store.test_change_feed import (
    Received,
    _terminate_backends,
    announce_marker,
    postgres_contexts,
    postgres_url,
    sqlite_contexts,
    started,
    wait_until,
)

from llmbilling.config.registry import built_in_registry
from llmbilling.service import admin, secrets, tokens
from llmbilling.service.audit import now
from llmbilling.service.context import DeploymentInputs, ServiceContext, writing
from llmbilling.service.decision_cache import DecisionInputCache
from llmbilling.service.resolve import StoredDecision, read_decision, read_decision_on_loop
from llmbilling.service.tokens import ActiveToken, RevokedToken, verify_token_on_loop
from llmbilling.store import workspaces as stored_workspaces
from llmbilling.store.change_feed import ChangeKind, StoreChange
from llmbilling.store.crypto import KeyRing
from llmbilling.store.engine import open_store
from llmbilling.store.tables import workspaces

# fixtures shared with the feed's tests
__all__ = ["postgres_contexts", "postgres_url", "sqlite_contexts"]

MODES = (None, "platform_managed", "byok", "disabled")
SECRET_NAMES = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "MODEL")
MODELS = ("claude-opus-4-7", "gpt-5", "  ", "openrouter/anthropic/claude-3")
WORKSPACES_PER_ORG = 2
ORGS = 2
Result = TypeVar("Result")


def cached(context: ServiceContext, **options: Any) -> ServiceContext:
    """``context`` with its feed started and a cache built with ``options``."""
    started(context)
    context.decision_cache = DecisionInputCache(context.change_feed, **options)
    return context


def on_loop(context: ServiceContext, work: Callable[[], Coroutine[Any, Any, Result]]) -> Result:
    async def run() -> Result:
        try:
            return await work()
        finally:
            await context.close_loop_reader()

    return asyncio.run(run())


def comparable(stored: StoredDecision) -> tuple[bytes, Any]:
    return stored.decision.to_json(), stored.state


@dataclass(frozen=True)
class Fleet:
    orgs: tuple[UUID, ...]
    workspaces: tuple[UUID, ...]


def new_fleet(context: ServiceContext) -> Fleet:
    orgs, members = [], []
    for _ in range(ORGS):
        org = admin.create_org(context, "cache-org").id
        orgs.append(org)
        for _ in range(WORKSPACES_PER_ORG):
            members.append(admin.create_workspace(context, org, runtime="claude-code").id)
    return Fleet(tuple(orgs), tuple(members))


@dataclass(frozen=True)
class SetOverride:
    workspace: int
    mode: str | None

    def apply(self, context: ServiceContext, fleet: Fleet) -> None:
        admin.set_override(context, fleet.workspaces[self.workspace], self.mode)


@dataclass(frozen=True)
class SetOrgDefault:
    org: int
    mode: str | None

    def apply(self, context: ServiceContext, fleet: Fleet) -> None:
        admin.set_org_default(context, fleet.orgs[self.org], self.mode)


@dataclass(frozen=True)
class SetSecret:
    scope: Literal["org", "workspace"]
    owner: int
    name: str
    value: str

    def apply(self, context: ServiceContext, fleet: Fleet) -> None:
        owners = fleet.orgs if self.scope == "org" else fleet.workspaces
        secrets.set_secret(
            context, self.scope, owners[self.owner % len(owners)], self.name, self.value
        )


@dataclass(frozen=True)
class DeleteSecret:
    scope: Literal["org", "workspace"]
    owner: int
    name: str

    def apply(self, context: ServiceContext, fleet: Fleet) -> None:
        owners = fleet.orgs if self.scope == "org" else fleet.workspaces
        secrets.delete_secret(context, self.scope, owners[self.owner % len(owners)], self.name)


@dataclass(frozen=True)
class SetModel:
    workspace: int
    model: str

    def apply(self, context: ServiceContext, fleet: Fleet) -> None:
        with writing(context) as connection:
            stored_workspaces.set_model(
                connection, fleet.workspaces[self.workspace], self.model, updated_at=now()
            )


Write = SetOverride | SetOrgDefault | SetSecret | DeleteSecret | SetModel
workspace_index = st.integers(0, ORGS * WORKSPACES_PER_ORG - 1)
scopes = st.sampled_from(["org", "workspace"])
writes: st.SearchStrategy[Write] = st.one_of(
    st.builds(SetOverride, workspace_index, st.sampled_from(MODES)),
    st.builds(SetOrgDefault, st.integers(0, ORGS - 1), st.sampled_from(MODES)),
    st.builds(
        SetSecret,
        scopes,
        workspace_index,
        st.sampled_from(SECRET_NAMES),
        st.sampled_from((*MODELS[:2], "sk-value")),
    ),
    st.builds(DeleteSecret, scopes, workspace_index, st.sampled_from(SECRET_NAMES)),
    st.builds(SetModel, workspace_index, st.sampled_from(MODELS)),
)
EXAMPLES = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@EXAMPLES
@given(st.lists(writes, min_size=1, max_size=6))
def test_cached_and_uncached_decisions_agree_under_any_writes(
    context: ServiceContext, history: list[Write]
) -> None:
    cached_context = cached(context)
    fleet = new_fleet(cached_context)

    async def check() -> None:
        for write in history:
            for workspace_id in fleet.workspaces:
                await read_decision_on_loop(cached_context, workspace_id)  # fill the cache
            write.apply(cached_context, fleet)
            for workspace_id in fleet.workspaces:
                from_memory = await read_decision_on_loop(cached_context, workspace_id)
                from_store = read_decision(cached_context, workspace_id)
                assert comparable(from_memory) == comparable(from_store), write
        assert all(cached_context.decision_cache.state(w) for w in fleet.workspaces)

    on_loop(cached_context, check)


@EXAMPLES
@given(st.lists(writes, min_size=1, max_size=5))
def test_another_process_s_writes_reach_the_cache_through_the_feed(
    postgres_contexts: Callable[..., ServiceContext], history: list[Write]
) -> None:
    writer, reader = postgres_contexts(), postgres_contexts()
    reader_feed = started(reader)  # the default cache: it serves on PostgreSQL
    fleet = new_fleet(writer)
    received = Received(reader_feed)

    async def check() -> None:
        for write in history:
            for workspace_id in fleet.workspaces:
                await read_decision_on_loop(reader, workspace_id)
            write.apply(writer, fleet)
            received.changes_until(announce_marker(writer))  # delivered to the reader
            for workspace_id in fleet.workspaces:
                from_memory = await read_decision_on_loop(reader, workspace_id)
                assert comparable(from_memory) == comparable(read_decision(reader, workspace_id))

    on_loop(reader, check)
    received.unsubscribe()


@EXAMPLES
@given(st.lists(writes, min_size=1, max_size=5))
def test_another_connection_s_writes_reach_the_cache_on_sqlite_at_the_next_read(
    sqlite_contexts: Callable[[], ServiceContext], history: list[Write]
) -> None:
    writer, reader = sqlite_contexts(), sqlite_contexts()
    started(reader)  # the default cache; the writer's commits never reach its feed
    fleet = new_fleet(writer)

    async def check() -> None:
        for write in history:
            for workspace_id in fleet.workspaces:
                await read_decision_on_loop(reader, workspace_id)
            write.apply(writer, fleet)
            for workspace_id in fleet.workspaces:
                from_memory = await read_decision_on_loop(reader, workspace_id)
                assert comparable(from_memory) == comparable(read_decision(reader, workspace_id))
        assert all(reader.decision_cache.state(w) for w in fleet.workspaces)  # it served

    on_loop(reader, check)


def test_a_cli_write_beside_a_cached_reader_on_sqlite_is_seen_by_its_next_read(
    tmp_path: Path,
) -> None:
    cli = Cli(tmp_path)
    context = ServiceContext(
        open_store(cli.database_url),
        DeploymentInputs(proxy=SAAS_PROXY, org_default=None),
        built_in_registry(),
        key_ring_loader=lambda: KeyRing.parse(cli.key_ring),
    )
    try:
        started(context)
        workspace_id = new_fleet(context).workspaces[0]

        async def scenario() -> list[str]:
            seen = [(await read_decision_on_loop(context, workspace_id)).decision.mode.value]
            assert context.decision_cache.state(workspace_id) is not None  # kept
            cli.ok("workspace", "set-override", str(workspace_id), "disabled")  # a process
            seen.append((await read_decision_on_loop(context, workspace_id)).decision.mode.value)
            return seen

        assert on_loop(context, scenario) == ["platform_managed", "disabled"]
    finally:
        context.close()


def test_the_cache_serves_on_either_engine_once_its_feed_is_started(
    context: ServiceContext,
) -> None:
    assert context.decision_cache.serving is False
    started(context)
    assert context.decision_cache.serving is True


def test_a_cache_whose_feed_is_not_started_does_not_serve(context: ServiceContext) -> None:
    cache = DecisionInputCache(context.change_feed, enabled=True)
    assert cache.serving is False
    assert cache.ticket() is None


def _write_runtime_past_the_store(
    context: ServiceContext, workspace_id: UUID, runtime: str
) -> None:
    # As another tool might: raw SQL, which announces nothing.
    with context.store.engine.begin() as connection:
        connection.execute(
            update(workspaces).where(workspaces.c.id == workspace_id).values(runtime=runtime)
        )


def _runtime_read_on_loop(context: ServiceContext, workspace_id: UUID) -> str | None:
    async def read() -> str | None:
        stored = await read_decision_on_loop(context, workspace_id)
        assert stored.state is not None
        return stored.state.runtime

    return on_loop(context, read)


def test_on_postgresql_a_kept_state_answers_until_an_event_for_its_scope(
    postgres_contexts: Callable[..., ServiceContext],
) -> None:
    # PostgreSQL hears of a commit only through the feed: raw SQL, which announces nothing,
    # is not seen until the scope's next event (on SQLite it is seen at once, see above).
    cached_context = cached(postgres_contexts())
    fleet = new_fleet(cached_context)
    workspace_id = fleet.workspaces[0]
    assert _runtime_read_on_loop(cached_context, workspace_id) == "claude-code"
    _write_runtime_past_the_store(cached_context, workspace_id, "codex")
    assert _runtime_read_on_loop(cached_context, workspace_id) == "claude-code"  # kept
    admin.set_org_default(cached_context, fleet.orgs[0], "byok")  # the org's event drops it
    assert _runtime_read_on_loop(cached_context, workspace_id) == "codex"


def test_on_postgresql_a_kept_state_is_read_again_after_its_maximum_age(
    postgres_contexts: Callable[..., ServiceContext],
) -> None:
    cached_context = cached(postgres_contexts(), max_age_seconds=0.2)
    workspace_id = new_fleet(cached_context).workspaces[0]
    assert _runtime_read_on_loop(cached_context, workspace_id) == "claude-code"
    _write_runtime_past_the_store(cached_context, workspace_id, "codex")
    time.sleep(0.25)
    assert _runtime_read_on_loop(cached_context, workspace_id) == "codex"


def test_a_read_that_began_before_an_event_is_not_kept(context: ServiceContext) -> None:
    cached_context = cached(context)
    fleet = new_fleet(cached_context)
    cache = cached_context.decision_cache
    before = read_decision(cached_context, fleet.workspaces[0]).state
    assert before is not None
    ticket = cache.ticket()
    admin.set_override(cached_context, fleet.workspaces[0], "disabled")
    cache.keep_state(ticket, before)
    assert cache.state(fleet.workspaces[0]) is None


def test_a_lost_feed_sends_every_read_to_the_store(
    postgres_contexts: Callable[..., ServiceContext],
) -> None:
    reader = postgres_contexts(application_name="cache-lost-feed")
    feed = started(reader)
    workspace_id = new_fleet(reader).workspaces[0]

    async def read_runtime() -> str | None:
        stored = await read_decision_on_loop(reader, workspace_id)
        assert stored.state is not None
        return stored.state.runtime

    async def scenario() -> list[str | None]:
        seen = [await read_runtime()]  # kept
        _terminate_backends("cache-lost-feed:feed")
        wait_until(lambda: not feed.connected, "the feed is lost")
        _write_runtime_past_the_store(reader, workspace_id, "codex")
        seen.append(await read_runtime())  # from the store: the feed is down
        return seen

    assert on_loop(reader, scenario) == ["claude-code", "codex"]


def test_nothing_is_served_from_before_a_restored_feed(
    postgres_contexts: Callable[..., ServiceContext],
) -> None:
    reader = postgres_contexts(application_name="cache-restored-feed")
    feed = started(reader)
    workspace_id = new_fleet(reader).workspaces[0]
    assert _runtime_read_on_loop(reader, workspace_id) == "claude-code"
    _terminate_backends("cache-restored-feed:feed")
    wait_until(lambda: not feed.connected, "the feed is lost")
    _write_runtime_past_the_store(reader, workspace_id, "codex")
    wait_until(lambda: feed.connected, "the feed is restored")
    assert _runtime_read_on_loop(reader, workspace_id) == "codex"


def _standing_on_loop(context: ServiceContext, token: str) -> Any:
    return on_loop(context, lambda: verify_token_on_loop(context, token))


def test_a_revocation_takes_effect_at_once_on_the_process_that_made_it(
    context: ServiceContext,
) -> None:
    cached_context = cached(context)
    org = admin.create_org(cached_context, "token-org").id
    issued = tokens.create_token(cached_context, scope="viewer", org_id=org)
    assert isinstance(_standing_on_loop(cached_context, issued.token), ActiveToken)
    assert cached_context.decision_cache.token(tokens.hash_token(issued.token)) is not None
    tokens.revoke_token(cached_context, issued.info.id)
    assert isinstance(_standing_on_loop(cached_context, issued.token), RevokedToken)


def test_a_revocation_reaches_another_process_through_the_feed(
    postgres_contexts: Callable[..., ServiceContext],
) -> None:
    writer, reader = postgres_contexts(), postgres_contexts()
    received = Received(started(reader))
    org = admin.create_org(writer, "token-org").id
    issued = tokens.create_token(writer, scope="viewer", org_id=org)
    assert isinstance(_standing_on_loop(reader, issued.token), ActiveToken)
    tokens.revoke_token(writer, issued.info.id)
    assert StoreChange(ChangeKind.TOKEN, org, None) in received.changes_until(
        announce_marker(writer)
    )
    assert isinstance(_standing_on_loop(reader, issued.token), RevokedToken)


@pytest.mark.parametrize("standing", ["unknown", "malformed"])
def test_a_token_the_store_does_not_know_is_never_kept(
    context: ServiceContext, standing: str
) -> None:
    cached_context = cached(context)
    token = tokens.TOKEN_PREFIX + "x" * 43 if standing == "unknown" else "not-a-token"
    assert _standing_on_loop(cached_context, token) is None
    assert cached_context.decision_cache.token(tokens.hash_token(token)) is None
