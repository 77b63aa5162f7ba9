"""The change feed: every committed write of a decision input reaches every subscriber, once;
a rolled-back one reaches nobody; a lost PostgreSQL listener says so and is restored."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import UUID

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from tests.cli.cli_runner import Cli
from tests.store.db_fixtures import (
    KEY_RING_TEXT,
    POSTGRES_ADMIN_URL,
    SAAS_PROXY,
    ContextFactory,
    PostgresServer,
)

from llmbilling.config.registry import built_in_registry
from llmbilling.service import admin, secrets, tokens
from llmbilling.service.context import DeploymentInputs, ServiceContext, writing
from llmbilling.store import migrate
from llmbilling.store.change_feed import (
    ChangeFeed,
    ChangeKind,
    FeedEvent,
    FeedLost,
    FeedRestored,
    StoreChange,
    announce,
    decode_change,
    encode_change,
)
from llmbilling.store.crypto import KeyRing
from llmbilling.store.engine import PoolSettings, open_store

WAIT_SECONDS = 10.0


class Received:
    """A subscriber that queues what it is told (callbacks run on other threads)."""

    def __init__(self, feed: ChangeFeed) -> None:
        self.events: queue.Queue[FeedEvent] = queue.Queue()
        self.unsubscribe = feed.subscribe(self.events.put)

    def next(self, timeout: float = WAIT_SECONDS) -> FeedEvent:
        return self.events.get(timeout=timeout)

    def changes_until(self, marker: StoreChange) -> list[FeedEvent]:
        """Everything received before ``marker`` (which must arrive)."""
        seen: list[FeedEvent] = []
        while (event := self.next()) != marker:
            seen.append(event)
        return seen

    def drained(self) -> list[FeedEvent]:
        seen: list[FeedEvent] = []
        while True:
            try:
                seen.append(self.events.get_nowait())
            except queue.Empty:
                return seen


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.01)


def started(context: ServiceContext) -> ChangeFeed:
    feed = context.change_feed
    feed.start()
    wait_until(lambda: feed.connected, "the feed is connected")
    return feed


def marker_change() -> StoreChange:
    """A change no write makes, announced to mark a point in the feed."""
    return StoreChange(ChangeKind.PLAN, uuid.uuid4(), None)


def announce_marker(context: ServiceContext) -> StoreChange:
    marker = marker_change()
    with writing(context) as connection:
        announce(connection, marker)
    return marker


def _create_org(context: ServiceContext, org: UUID, workspace: UUID) -> StoreChange:
    created = admin.create_org(context, "another-org")
    return StoreChange(ChangeKind.ORG_DEFAULT, created.id, None)


def _create_workspace(context: ServiceContext, org: UUID, workspace: UUID) -> StoreChange:
    created = admin.create_workspace(context, org, runtime="claude-code", model=None)
    return StoreChange(ChangeKind.WORKSPACE, org, created.id)


def _set_override(context: ServiceContext, org: UUID, workspace: UUID) -> StoreChange:
    admin.set_override(context, workspace, "byok")
    return StoreChange(ChangeKind.OVERRIDE, org, workspace)


def _set_org_default(context: ServiceContext, org: UUID, workspace: UUID) -> StoreChange:
    admin.set_org_default(context, org, "platform_managed")
    return StoreChange(ChangeKind.ORG_DEFAULT, org, None)


def _set_org_secret(context: ServiceContext, org: UUID, workspace: UUID) -> StoreChange:
    secrets.set_secret(context, "org", org, "ANTHROPIC_API_KEY", "sk-one")
    return StoreChange(ChangeKind.SECRET, org, None)


def _replace_workspace_secret(context: ServiceContext, org: UUID, workspace: UUID) -> StoreChange:
    secrets.set_secret(context, "workspace", workspace, "ANTHROPIC_API_KEY", "sk-one")
    secrets.set_secret(context, "workspace", workspace, "ANTHROPIC_API_KEY", "sk-two")
    return StoreChange(ChangeKind.SECRET, org, workspace)


def _create_token(context: ServiceContext, org: UUID, workspace: UUID) -> StoreChange:
    tokens.create_token(context, scope="viewer", org_id=org)
    return StoreChange(ChangeKind.TOKEN, org, None)


def _revoke_token(context: ServiceContext, org: UUID, workspace: UUID) -> StoreChange:
    issued = tokens.create_token(context, scope="viewer", org_id=org)
    tokens.revoke_token(context, issued.info.id)
    return StoreChange(ChangeKind.TOKEN, org, None)


WriteCase = Callable[[ServiceContext, UUID, UUID], StoreChange]
WRITES: dict[str, WriteCase] = {
    "org created": _create_org,
    "workspace created": _create_workspace,
    "override written": _set_override,
    "org default written": _set_org_default,
    "org secret set": _set_org_secret,
    "workspace secret replaced": _replace_workspace_secret,
    "token created": _create_token,
    "token revoked": _revoke_token,
}


def new_org_and_workspace(context: ServiceContext) -> tuple[UUID, UUID]:
    org = admin.create_org(context, "feed-org")
    workspace = admin.create_workspace(context, org.id, runtime="claude-code", model="m")
    return org.id, workspace.id


@pytest.fixture(scope="module")
def postgres_url(postgres_server: PostgresServer) -> str:
    """A migrated PostgreSQL database of this module's own (its listeners are counted)."""
    url = postgres_server.create_database()
    store = open_store(url)
    try:
        migrate.upgrade(store)
    finally:
        store.close()
    return url


@pytest.fixture
def sqlite_contexts(tmp_path: Path) -> Iterator[Callable[[], ServiceContext]]:
    """Service contexts on one migrated SQLite file, each with a store (connections) of its
    own, as two processes on the file have; closed at the end."""
    url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    store = open_store(url)
    try:
        migrate.upgrade(store)
    finally:
        store.close()
    opened: list[ServiceContext] = []

    def make() -> ServiceContext:
        context = ServiceContext(
            open_store(url),
            DeploymentInputs(proxy=SAAS_PROXY, org_default=None),
            built_in_registry(),
            key_ring_loader=lambda: KeyRing.parse(KEY_RING_TEXT),
        )
        opened.append(context)
        return context

    yield make
    for context in opened:
        context.close()


@pytest.fixture
def postgres_contexts(postgres_url: str) -> Iterator[Callable[..., ServiceContext]]:
    """Service contexts on PostgreSQL, each like a process of its own; closed at the end."""
    opened: list[ServiceContext] = []

    def make(application_name: str | None = None) -> ServiceContext:
        pool = PoolSettings(application_name=application_name or f"feed-{uuid.uuid4().hex[:8]}")
        context = ServiceContext(
            open_store(postgres_url, pool=pool),
            DeploymentInputs(proxy=SAAS_PROXY, org_default=None),
            built_in_registry(),
            key_ring_loader=lambda: KeyRing.parse(KEY_RING_TEXT),
        )
        opened.append(context)
        return context

    yield make
    for context in opened:
        context.close()


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_a_committed_write_reaches_its_own_process_before_the_write_returns(
    context: ServiceContext, write: WriteCase
) -> None:
    scope = new_org_and_workspace(context)
    received = Received(started(context))
    expected = write(context, *scope)
    assert expected in received.drained()


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_a_committed_write_reaches_another_process_on_postgresql_once(
    postgres_contexts: Callable[..., ServiceContext], write: WriteCase
) -> None:
    writer, other = postgres_contexts(), postgres_contexts()
    scope = new_org_and_workspace(writer)
    own, elsewhere = Received(started(writer)), Received(started(other))
    expected = write(writer, *scope)
    marker = announce_marker(writer)
    assert expected in elsewhere.changes_until(marker)
    assert expected in own.drained()
    # Delivered to the writer at its commit; its own notification is not delivered again.
    second_marker = announce_marker(other)
    assert expected not in own.changes_until(second_marker)


def test_a_rolled_back_transaction_announces_nothing(
    make_context: ContextFactory, engine_url: str
) -> None:
    writer, other = make_context(), make_context()
    own, elsewhere = Received(started(writer)), Received(started(other))
    rolled_back = marker_change()

    def failing_use_case() -> None:
        with writing(writer) as connection:
            announce(connection, rolled_back)
            raise RuntimeError("the use case failed")

    with pytest.raises(RuntimeError):
        failing_use_case()
    marker = announce_marker(writer)
    assert own.changes_until(marker) == []
    if engine_url.startswith("postgresql"):
        assert elsewhere.changes_until(marker) == []
    else:
        assert elsewhere.drained() == []  # SQLite: nothing leaves the committing context


def test_changes_reach_every_subscriber_and_none_after_it_unsubscribes(
    context: ServiceContext,
) -> None:
    feed = started(context)
    first, second = Received(feed), Received(feed)
    second.unsubscribe()
    marker = announce_marker(context)
    assert first.drained() == [marker]
    assert second.drained() == []


def test_a_failing_subscriber_does_not_stop_the_others(context: ServiceContext) -> None:
    feed = started(context)

    def failing(_event: FeedEvent) -> None:
        raise ValueError("a broken subscriber")

    feed.subscribe(failing)
    received = Received(feed)
    marker = announce_marker(context)
    assert received.drained() == [marker]


def test_the_feed_spans_processes_only_on_postgresql(
    context: ServiceContext, engine_url: str
) -> None:
    feed = started(context)
    assert feed.spans_processes is engine_url.startswith("postgresql")


def _unseen_commits_after_each_step(
    reader_context: ServiceContext, steps: list[Callable[[], object]]
) -> list[bool]:
    """What the reader reports at its first call, then after each step (on one connection)."""

    async def scenario() -> list[bool]:
        reader = reader_context.loop_reader()
        try:
            seen = [reader.commits_unseen_by_feed()]
            for step in steps:
                step()
                seen.append(reader.commits_unseen_by_feed())
            return seen
        finally:
            await reader_context.close_loop_reader()

    return asyncio.run(scenario())


def test_the_sqlite_reader_reports_every_other_connection_s_commit(
    sqlite_contexts: Callable[[], ServiceContext],
) -> None:
    reader, other = sqlite_contexts(), sqlite_contexts()
    steps: list[Callable[[], object]] = [
        lambda: None,  # nothing committed
        lambda: admin.create_org(other, "other-store-org"),  # another store's connection
        lambda: None,
        lambda: admin.create_org(reader, "own-store-org"),  # its own store's write connection
    ]
    assert _unseen_commits_after_each_step(reader, steps) == [True, False, True, False, True]


def test_the_sqlite_reader_reports_another_process_s_commit(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    context = ServiceContext(
        open_store(cli.database_url),
        DeploymentInputs(proxy=SAAS_PROXY, org_default=None),
        built_in_registry(),
        key_ring_loader=lambda: KeyRing.parse(cli.key_ring),
    )
    try:
        steps: list[Callable[[], object]] = [
            lambda: None,
            lambda: cli.ok("org", "create", "cli-org"),  # an `llmbilling` process
        ]
        assert _unseen_commits_after_each_step(context, steps) == [True, False, True]
    finally:
        context.close()


def test_a_sqlite_reader_that_cannot_open_its_file_reports_unseen_commits(
    tmp_path: Path,
) -> None:
    (tmp_path / "store.sqlite3").mkdir()  # the path is a directory: nothing can open it
    context = ServiceContext(
        open_store(f"sqlite:///{tmp_path / 'store.sqlite3'}"),
        DeploymentInputs(proxy=SAAS_PROXY, org_default=None),
        built_in_registry(),
        key_ring_loader=lambda: KeyRing.parse(KEY_RING_TEXT),
    )
    try:
        steps: list[Callable[[], object]] = [lambda: None]
        assert _unseen_commits_after_each_step(context, steps) == [True, True]
    finally:
        context.close()


def test_the_postgresql_reader_leaves_other_processes_commits_to_the_feed(
    postgres_contexts: Callable[..., ServiceContext],
) -> None:
    reader, other = postgres_contexts(), postgres_contexts()
    steps: list[Callable[[], object]] = [lambda: admin.create_org(other, "other-process-org")]
    assert _unseen_commits_after_each_step(reader, steps) == [False, False]


def test_a_feed_not_started_is_not_connected(context: ServiceContext) -> None:
    assert context.change_feed.connected is False


def test_a_closed_feed_is_not_connected(context: ServiceContext) -> None:
    feed = started(context)
    feed.close()
    assert feed.connected is False


@pytest.mark.parametrize(
    "change",
    [
        StoreChange(ChangeKind.OVERRIDE, uuid.uuid4(), uuid.uuid4()),
        StoreChange(ChangeKind.ORG_DEFAULT, uuid.uuid4(), None),
        StoreChange(ChangeKind.TOKEN, None, None),
    ],
)
def test_a_notification_payload_reads_back_as_its_change(change: StoreChange) -> None:
    assert decode_change(encode_change(change, "origin")) == ("origin", change)


@pytest.fixture
def listening_feed(postgres_url: str) -> Iterator[tuple[ChangeFeed, str]]:
    """A PostgreSQL feed whose connections carry a name of their own, and that name."""
    name = f"feed-test-{uuid.uuid4().hex[:8]}"
    store = open_store(postgres_url, pool=PoolSettings(application_name=name))
    feed = ChangeFeed(store, reconnect_seconds=0.05)
    try:
        yield feed, f"{name}:feed"
    finally:
        feed.close()
        store.close()


def _terminate_backends(application_name: str) -> int:
    admin_engine = create_engine(
        make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+psycopg"),
        isolation_level="AUTOCOMMIT",
    )
    try:
        with admin_engine.connect() as connection:
            return len(
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE application_name = :name"
                    ),
                    {"name": application_name},
                ).all()
            )
    finally:
        admin_engine.dispose()


def test_a_lost_listener_yields_feed_lost_then_feed_restored(
    listening_feed: tuple[ChangeFeed, str],
) -> None:
    feed, listener_name = listening_feed
    received = Received(feed)
    connected_when_lost: list[bool] = []
    lost = threading.Event()

    def on_event(event: FeedEvent) -> None:
        if isinstance(event, FeedLost):
            connected_when_lost.append(feed.connected)
            lost.set()

    feed.subscribe(on_event)
    feed.start()
    assert isinstance(received.next(), FeedRestored)  # listening from the start
    assert feed.connected
    assert _terminate_backends(listener_name) == 1
    assert isinstance(received.next(), FeedLost)
    assert lost.wait(WAIT_SECONDS)
    assert connected_when_lost == [False]
    assert isinstance(received.next(), FeedRestored)
    assert feed.connected


def test_a_restored_listener_delivers_changes_again(
    listening_feed: tuple[ChangeFeed, str], postgres_contexts: Callable[..., ServiceContext]
) -> None:
    feed, listener_name = listening_feed
    received = Received(feed)
    feed.start()
    assert isinstance(received.next(), FeedRestored)
    _terminate_backends(listener_name)
    assert isinstance(received.next(), FeedLost)
    assert isinstance(received.next(), FeedRestored)
    marker = announce_marker(postgres_contexts())
    assert received.changes_until(marker) == []
