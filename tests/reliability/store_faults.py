"""Faults at every read of a real store, for the fail-closed tests: the ways a read can fail
(``Fault``), a harness over one engine's database that stores a drawn workspace and breaks its
rows or the whole store (``FaultHarness``), and one fault example checked end to end
(``run_fault_example``: the read path's decision and the fleet what-if's count of it).
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import uuid
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text, update
from sqlalchemy.engine import make_url
from tests.reliability.decision_checks import assert_section_2_invariants
from tests.store.db_fixtures import KEY_RING_TEXT, POSTGRES_ADMIN_URL
from tests.strategies import BUILT_IN, StoredState

from llmbilling.core.decision import OverrideReadFailure, ResolutionInput
from llmbilling.core.policy import CompiledPolicy
from llmbilling.core.provisioning import ProxySettings
from llmbilling.core.registry import CompiledRegistry
from llmbilling.core.resolve import resolve_billing_mode
from llmbilling.core.whatif import Configuration
from llmbilling.errors import StoreUnavailableError
from llmbilling.service import admin, secrets
from llmbilling.service.context import DeploymentInputs, ServiceContext
from llmbilling.service.resolve import resolve_workspace
from llmbilling.service.whatif import run_whatif
from llmbilling.store.crypto import KeyRing, SecretScopeName
from llmbilling.store.engine import Store, open_store
from llmbilling.store.tables import organizations, workspace_secrets, workspaces


class Fault(StrEnum):
    """Where the read fails. Row faults damage the workspace's own rows; store faults make the
    whole database unreadable before the first row."""

    NONE = "none"
    # Row faults (both engines): the workspace has no model column, so the read decrypts its
    # sealed MODEL secret; the sealed value is damaged.
    CIPHERTEXT_TAMPERED = "ciphertext_tampered"
    CIPHERTEXT_NOT_BASE64 = "ciphertext_not_base64"
    KEY_VERSION_UNKNOWN = "key_version_unknown"
    # A damaged credential is never read by a decision (names only): nothing changes.
    CREDENTIAL_TAMPERED = "credential_tampered"
    # Store faults.
    SQLITE_PATH_IS_A_DIRECTORY = "sqlite_path_is_a_directory"
    SQLITE_NOT_A_DATABASE = "sqlite_not_a_database"
    SQLITE_UNREADABLE = "sqlite_unreadable"
    SQLITE_TABLE_DROPPED = "sqlite_table_dropped"
    POSTGRES_PORT_CLOSED = "postgres_port_closed"
    POSTGRES_DATABASE_MISSING = "postgres_database_missing"
    POSTGRES_BACKEND_TERMINATED = "postgres_backend_terminated"


ROW_FAULTS = {
    Fault.CIPHERTEXT_TAMPERED,
    Fault.CIPHERTEXT_NOT_BASE64,
    Fault.KEY_VERSION_UNKNOWN,
}
FAULTS_BY_ENGINE = {
    "sqlite": [
        Fault.NONE,
        *sorted(ROW_FAULTS),
        Fault.CREDENTIAL_TAMPERED,
        Fault.SQLITE_PATH_IS_A_DIRECTORY,
        Fault.SQLITE_NOT_A_DATABASE,
        Fault.SQLITE_TABLE_DROPPED,
        # root reads any file whatever its mode: the test can only make it unreadable to others.
        *([Fault.SQLITE_UNREADABLE] if os.geteuid() != 0 else []),
    ],
    "postgresql": [
        Fault.NONE,
        *sorted(ROW_FAULTS),
        Fault.CREDENTIAL_TAMPERED,
        Fault.POSTGRES_PORT_CLOSED,
        Fault.POSTGRES_DATABASE_MISSING,
        Fault.POSTGRES_BACKEND_TERMINATED,
    ],
}
STORE_FAULTS = {fault for faults in FAULTS_BY_ENGINE.values() for fault in faults} - ROW_FAULTS
STORE_FAULTS -= {Fault.NONE, Fault.CREDENTIAL_TAMPERED}
# A password in a URL must never reach a decision's error message.
URL_PASSWORD = "pw-SENTINEL-never-shown"

PROXY = ProxySettings(base_url="https://proxy.example/v1", usage_token="usage-token")


@dataclass
class FaultHarness:
    """The session database of one engine, and the ways to make its reads fail."""

    engine: str
    url: str
    store: Store
    folder: Path
    sqlite_template: Path | None
    tally: dict[str, int] = field(default_factory=dict)

    def context(
        self,
        store: Store,
        state: StoredState,
        registry: CompiledRegistry | None,
        policy: CompiledPolicy,
    ) -> ServiceContext:
        return ServiceContext(
            store,
            DeploymentInputs(
                proxy=PROXY if state.proxy_configured else ProxySettings(),
                org_default=state.deployment_org_default,
            ),
            registry,
            key_ring_loader=lambda: KeyRing.parse(KEY_RING_TEXT),
            policy=policy,
        )

    def store_workspace(self, context: ServiceContext, state: StoredState) -> tuple[Any, Any]:
        org = admin.create_org(context, "fault-org")
        if state.org_default is not None:
            with context.store.engine.begin() as connection:
                connection.execute(
                    update(organizations)
                    .where(organizations.c.id == org.id)
                    .values(llm_billing_mode_default=state.org_default)
                )
        # A write checks the runtime against the registry, so with none loaded the row is
        # written as it was before the registry broke; the decision below reads it without one.
        writer = (
            context
            if context.registry is not None
            else self.context(context.store, state, BUILT_IN, context.policy)
        )
        workspace = admin.create_workspace(writer, org.id, override=state.override)
        # Runtime and model as another tool might have written them: raw, unchecked.
        with context.store.engine.begin() as connection:
            connection.execute(
                update(workspaces)
                .where(workspaces.c.id == workspace.id)
                .values(runtime=state.runtime, model=state.model)
            )
        for index, name in enumerate(sorted(state.credentials)):
            scope: SecretScopeName = "org" if index % 2 else "workspace"
            owner = org.id if scope == "org" else workspace.id
            secrets.set_secret(context, scope, owner, name, f"value-of-{name}")
        if state.model_secret is not None:
            secrets.set_secret(context, "workspace", workspace.id, "MODEL", state.model_secret)
        return org.id, workspace.id

    def damage_row(self, fault: Fault, state: StoredState, workspace_id: Any) -> None:
        if fault is Fault.CREDENTIAL_TAMPERED:
            values: dict[str, Any] = {"ciphertext": _tampered(self.store, workspace_id, None)}
            name = None
        elif fault is Fault.CIPHERTEXT_TAMPERED:
            name = "MODEL"
            values = {"ciphertext": _tampered(self.store, workspace_id, name)}
        elif fault is Fault.CIPHERTEXT_NOT_BASE64:
            name, values = "MODEL", {"ciphertext": "not base64 at all!"}
        else:
            name, values = "MODEL", {"key_version": 999}
        statement = (
            update(workspace_secrets)
            .where(workspace_secrets.c.workspace_id == workspace_id)
            .values(**values)
        )
        if name is not None:
            statement = statement.where(workspace_secrets.c.key == name)
        else:
            statement = statement.where(workspace_secrets.c.key != "MODEL")
        with self.store.engine.begin() as connection:
            connection.execute(statement)

    def broken_store(self, fault: Fault) -> Store:
        """A store whose every read fails, the way ``fault`` says."""
        place = self.folder / uuid.uuid4().hex
        place.mkdir()
        if fault is Fault.SQLITE_PATH_IS_A_DIRECTORY:
            (place / "store.sqlite3").mkdir()
            return open_store(f"sqlite:///{place / 'store.sqlite3'}")
        if fault is Fault.SQLITE_NOT_A_DATABASE:
            (place / "store.sqlite3").write_bytes(os.urandom(8192))
            return open_store(f"sqlite:///{place / 'store.sqlite3'}")
        if fault is Fault.SQLITE_UNREADABLE:
            assert self.sqlite_template is not None
            shutil.copyfile(self.sqlite_template, place / "store.sqlite3")
            (place / "store.sqlite3").chmod(0)
            return open_store(f"sqlite:///{place / 'store.sqlite3'}")
        if fault is Fault.SQLITE_TABLE_DROPPED:
            assert self.sqlite_template is not None
            shutil.copyfile(self.sqlite_template, place / "store.sqlite3")
            store = open_store(f"sqlite:///{place / 'store.sqlite3'}")
            with store.engine.begin() as connection:
                connection.execute(text("DROP TABLE org_secrets"))
            return store
        url = make_url(self.url).set(password=URL_PASSWORD)
        if fault is Fault.POSTGRES_PORT_CLOSED:
            return open_store(url.set(port=closed_port()).render_as_string(hide_password=False))
        if fault is Fault.POSTGRES_DATABASE_MISSING:
            missing = url.set(database=f"llmbilling_missing_{uuid.uuid4().hex[:8]}")
            return open_store(missing.render_as_string(hide_password=False))
        assert fault is Fault.POSTGRES_BACKEND_TERMINATED
        store = open_store(self.url, pool_pre_ping=False)
        terminate_pooled_connections(store)
        return store


def _tampered(store: Store, workspace_id: Any, name: str | None) -> str:
    """One sealed value of the workspace with one byte of its ciphertext flipped: still base64,
    still the right length, but its authentication tag no longer matches."""
    with store.read_engine.connect() as connection:
        statement = workspace_secrets.select().where(
            workspace_secrets.c.workspace_id == workspace_id
        )
        if name is not None:
            statement = statement.where(workspace_secrets.c.key == name)
        else:
            statement = statement.where(workspace_secrets.c.key != "MODEL")
        row = connection.execute(statement.limit(1)).mappings().one()
    blob = bytearray(base64.b64decode(row["ciphertext"]))
    blob[-1] ^= 0x01
    return base64.b64encode(bytes(blob)).decode()


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def terminate_pooled_connections(store: Store) -> None:
    """Open the read pool's connection, then kill its server process from another session:
    the pool still holds it, and the next read finds it dead."""
    with store.read_engine.connect() as connection:
        pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    admin_engine = create_engine(
        make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+psycopg"),
        isolation_level="AUTOCOMMIT",
    )
    try:
        with admin_engine.connect() as connection:
            killed = connection.execute(
                text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}
            ).scalar_one()
            assert killed
    finally:
        admin_engine.dispose()


def expected_inputs(state: StoredState, workspace_id: Any) -> ResolutionInput:
    """What the read path must decide from, computed from the drawn state (spec §4, §5)."""
    model = state.model.strip() if state.model is not None and state.model.strip() else None
    if model is None and state.model_secret is not None and state.model_secret.strip():
        model = state.model_secret.strip()
    return ResolutionInput(
        workspace_id=str(workspace_id),
        override=state.override,
        org_default=(
            state.org_default if state.org_default is not None else state.deployment_org_default
        ),
        runtime=state.runtime,
        model=model,
        auth_env=state.credentials | ({"MODEL"} if state.model_secret is not None else set()),
        proxy_configured=state.proxy_configured,
    )


def run_fault_example(
    harness: FaultHarness,
    state: StoredState,
    fault: Fault,
    registry: CompiledRegistry | None,
    policy: CompiledPolicy,
) -> None:
    context = harness.context(harness.store, state, registry, policy)
    fault_store: Store | None = None
    try:
        needs_model_secret = fault in ROW_FAULTS
        if needs_model_secret and state.model_secret is None:
            state = replace(state, model=None, model_secret="claude-opus-4-7")
        if fault is Fault.CREDENTIAL_TAMPERED and not state.credentials:
            state = replace(state, credentials=frozenset({"OPENAI_API_KEY"}))
        org_id, workspace_id = harness.store_workspace(context, state)
        if fault in STORE_FAULTS:
            fault_store = harness.broken_store(fault)
            context = harness.context(fault_store, state, registry, policy)
        elif fault is not Fault.NONE:
            harness.damage_row(fault, state, workspace_id)

        # Never an exception to the caller of resolve_workspace.
        decision = resolve_workspace(context, workspace_id)
        inputs = expected_inputs(state, workspace_id)
        record = decision.to_dict()
        if fault in STORE_FAULTS or fault in ROW_FAULTS:
            # Nothing read is trusted: only the deployment's own inputs are left.
            failed = ResolutionInput(
                workspace_id=str(workspace_id),
                override=OverrideReadFailure("the read failed"),
                org_default=state.deployment_org_default,
                proxy_configured=state.proxy_configured,
            )
            assert_section_2_invariants(failed, registry, policy, decision)
            assert record["error"] is not None
            assert URL_PASSWORD not in record["error"]["message"]
            assert "value-of-" not in str(record)
        else:
            assert_section_2_invariants(inputs, registry, policy, decision)
            pure = resolve_billing_mode(inputs, registry, policy)
            assert record == {**pure.to_dict(), "workspace_id": str(workspace_id)}

        # The what-if of the same org under the same configuration: the row counted as the
        # decision above, or a typed failure when the store cannot be read at all.
        same = Configuration(policy, registry)
        if fault in STORE_FAULTS:
            if fault is Fault.POSTGRES_BACKEND_TERMINATED:
                # The read above replaced the dead connection: kill the new one too.
                assert fault_store is not None
                terminate_pooled_connections(fault_store)
            with pytest.raises(StoreUnavailableError) as raised:
                run_whatif(context, same, org_id=org_id)
            assert URL_PASSWORD not in raised.value.message
        else:
            whatif = run_whatif(context, same, org_id=org_id)
            unchanged = (decision.mode.value, decision.mode.value)
            assert whatif.total == 1
            assert whatif.mode_transitions == {unchanged: 1}
            assert whatif.source_transitions == {(decision.source.value, decision.source.value): 1}
            assert not whatif.has_danger
        harness.tally[fault.value] = harness.tally.get(fault.value, 0) + 1
    finally:
        if fault_store is not None:
            fault_store.close()
