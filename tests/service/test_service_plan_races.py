"""A plan's apply and a concurrent write on PostgreSQL, over real connections: every
secret write locks its owner's rows (the workspace's, then its org's) before writing, and a
plan's apply locks the same rows before re-reading the versions it is bound to, so a secret
written while an apply is in flight is either seen by it (``PLAN_STALE``) or waits for it.
An override write shares its org's row the same way, so an org-wide apply waits for it too.

SQLite needs no such test: its write transaction locks the whole database. Waiting is
observed, never timed: the test polls PostgreSQL's own view of the waiting backends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, text
from tests.store.db_fixtures import KEY_RING_TEXT, SAAS_PROXY, PostgresServer, stored_workspace

from llmbilling.config.registry import built_in_registry
from llmbilling.errors import PlanStaleError
from llmbilling.service import admin, plans, secrets
from llmbilling.service.context import DeploymentInputs, ServiceContext
from llmbilling.store import migrate
from llmbilling.store import plans as stored_plans
from llmbilling.store.crypto import KeyRing, SecretScopeName
from llmbilling.store.engine import Connection, open_store

KIMI = "kimi-for-coding"
# How long a waiter may take to show up as waiting before the test fails (not a measurement).
WAIT_LIMIT_SECONDS = 30.0


@pytest.fixture(scope="module")
def database_url(postgres_server: PostgresServer) -> str:
    url = postgres_server.create_database()
    store = open_store(url)
    try:
        migrate.upgrade(store)
    finally:
        store.close()
    return url


@pytest.fixture
def context(database_url: str) -> Iterator[ServiceContext]:
    opened = ServiceContext(
        open_store(database_url),
        DeploymentInputs(proxy=SAAS_PROXY, org_default=None),
        built_in_registry(),
        key_ring_loader=lambda: KeyRing.parse(KEY_RING_TEXT),
    )
    yield opened
    opened.close()


def _wait_until_a_backend_waits_on_a_lock(database_url: str) -> None:
    """Return once another backend of this database waits on a row lock; fail after the
    limit (then the writer did not wait: the lock it should take is not there)."""
    engine = create_engine(database_url)
    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    try:
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                waiting = connection.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock'"
                    )
                ).scalar_one()
            if waiting:
                return
            time.sleep(0.05)
    finally:
        engine.dispose()
    pytest.fail("no backend waited on a lock: the write did not wait for the lock holder")


def _holding(
    context: ServiceContext, write: Callable[[Callable[[Connection], None]], object]
) -> tuple[threading.Event, Future[object], ThreadPoolExecutor]:
    """Start ``write`` (given an ``under_lock`` hook) in a thread, and hold it open under its
    locks until the returned release event is set."""
    locked, release = threading.Event(), threading.Event()

    def hold(connection: Connection) -> None:
        locked.set()
        assert release.wait(WAIT_LIMIT_SECONDS * 2)

    executor = ThreadPoolExecutor(max_workers=2)
    future = executor.submit(write, hold)
    assert locked.wait(WAIT_LIMIT_SECONDS)
    return release, future, executor


@pytest.mark.parametrize(
    ("secret_scope", "plan_kind"),
    [("org", "org_default"), ("workspace", "org_default"), ("workspace", "override")],
)
def test_a_plan_applied_while_a_secret_write_is_in_flight_waits_and_sees_it(
    context: ServiceContext, database_url: str, secret_scope: SecretScopeName, plan_kind: str
) -> None:
    org_id, workspace_id = stored_workspace(context, org_default="platform_managed", model=KIMI)
    change = (
        plans.org_default_change(org_id, "byok")
        if plan_kind == "org_default"
        else plans.override_change(workspace_id, "byok")
    )
    plan = plans.propose_plan(context, change)
    owner = org_id if secret_scope == "org" else workspace_id
    release, secret_write, executor = _holding(
        context,
        lambda hook: secrets.set_secret(
            context, secret_scope, owner, "KIMI_API_KEY", "sk-new", under_lock=hook
        ),
    )
    try:
        apply = executor.submit(plans.apply_plan, context, plan.id)
        _wait_until_a_backend_waits_on_a_lock(database_url)
        assert not apply.done()
        release.set()
        secret_write.result(timeout=WAIT_LIMIT_SECONDS)
        with pytest.raises(PlanStaleError) as raised:
            apply.result(timeout=WAIT_LIMIT_SECONDS)
    finally:
        release.set()
        executor.shutdown(wait=True)

    assert raised.value.details["moved"] == ["secrets"]
    assert plans.get_plan(context, plan.id).status == "proposed"


@pytest.mark.parametrize("secret_scope", ["org", "workspace"])
@pytest.mark.parametrize("operation", ["set", "delete"])
def test_a_secret_write_waits_for_the_rows_a_plan_apply_locked(
    context: ServiceContext, database_url: str, secret_scope: SecretScopeName, operation: str
) -> None:
    org_id, workspace_id = stored_workspace(
        context, model=KIMI, org_secrets={"EXTRA": "v"}, workspace_secrets={"EXTRA": "v"}
    )
    owner = org_id if secret_scope == "org" else workspace_id

    def write() -> object:
        if operation == "set":
            return secrets.set_secret(context, secret_scope, owner, "EXTRA", "v2")
        return secrets.delete_secret(context, secret_scope, owner, "EXTRA")

    # The apply's own lock, held on a real connection as its transaction holds it.
    with context.store.engine.connect() as holder, holder.begin() as held:
        stored_plans.lock_scope(holder, org_id, workspace_id)
        with ThreadPoolExecutor(max_workers=1) as executor:
            waiting = executor.submit(write)
            _wait_until_a_backend_waits_on_a_lock(database_url)
            assert not waiting.done()
            held.commit()
            waiting.result(timeout=WAIT_LIMIT_SECONDS)

    names = [secret.name for secret in secrets.list_secrets(context, secret_scope, owner)]
    assert names == (["EXTRA"] if operation == "set" else [])


def test_a_held_org_lock_does_not_hold_up_another_orgs_secret_writes(
    context: ServiceContext,
) -> None:
    org_id, workspace_id = stored_workspace(context, model=KIMI)
    other_org, _ = stored_workspace(context, model=KIMI)

    with context.store.engine.connect() as holder, holder.begin():
        stored_plans.lock_scope(holder, org_id, workspace_id)
        written = secrets.set_secret(context, "org", other_org, "EXTRA", "v")

    assert written.owner_id == other_org


def test_an_org_plan_applied_while_an_override_write_is_in_flight_waits_and_sees_it(
    context: ServiceContext, database_url: str
) -> None:
    # The override write shares its org's row; the org-wide apply must lock it exclusively.
    org_id, workspace_id = stored_workspace(context, org_default="platform_managed", model=KIMI)
    plan = plans.propose_plan(context, plans.org_default_change(org_id, "byok"))
    release, override_write, executor = _holding(
        context,
        lambda hook: admin.set_override(context, workspace_id, "disabled", under_lock=hook),
    )
    try:
        apply = executor.submit(plans.apply_plan, context, plan.id)
        _wait_until_a_backend_waits_on_a_lock(database_url)
        assert not apply.done()
        release.set()
        override_write.result(timeout=WAIT_LIMIT_SECONDS)
        with pytest.raises(PlanStaleError) as raised:
            apply.result(timeout=WAIT_LIMIT_SECONDS)
    finally:
        release.set()
        executor.shutdown(wait=True)

    assert raised.value.details["moved"] == ["workspaces"]
