"""Admin use cases: every write audited in its transaction, never with a secret value."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.store.db_fixtures import ContextFactory, stored_workspace

from llmbilling.core.modes import BillingMode
from llmbilling.errors import (
    AlreadyExistsError,
    InvalidInputError,
    OrgNotFoundError,
    RegistryError,
    WorkspaceNotFoundError,
)
from llmbilling.service import admin, secrets
from llmbilling.service.audit import AuditContext
from llmbilling.service.context import DeploymentInputs, ServiceContext
from llmbilling.store.tables import DEFAULT_RUNTIME, audit_log, workspaces


def _audit(context: ServiceContext, request_id: str) -> list[dict[str, Any]]:
    with context.store.read_engine.connect() as connection:
        rows = connection.execute(
            select(audit_log).where(audit_log.c.request_id == request_id).order_by(audit_log.c.id)
        ).mappings()
        return [dict(row) for row in rows]


def test_each_write_appends_one_audit_entry_with_actor_before_and_after(
    context: ServiceContext,
) -> None:
    who = AuditContext(actor="api:alice", request_id=str(uuid.uuid4()))
    org = admin.create_org(context, "acme", audit_context=who)
    workspace = admin.create_workspace(context, org.id, model="gpt-5.5", audit_context=who)
    admin.set_override(context, workspace.id, "byok", audit_context=who)
    admin.set_override(context, workspace.id, None, audit_context=who)
    admin.set_org_default(context, org.id, "Platform_Managed", audit_context=who)

    entries = _audit(context, who.request_id)
    assert [e["action"] for e in entries] == [
        "org.created",
        "workspace.created",
        "workspace.override_set",
        "workspace.override_cleared",
        "org.billing_mode_default_set",
    ]
    assert {e["actor"] for e in entries} == {"api:alice"}
    assert entries[2]["before"] == {"llm_billing_mode": None}
    assert entries[2]["after"] == {"llm_billing_mode": "byok"}
    assert entries[4]["after"] == {"llm_billing_mode_default": "Platform_Managed"}
    assert all(e["occurred_at"] is not None for e in entries)


def test_secret_audit_entries_record_name_scope_and_key_version_only(
    context: ServiceContext,
) -> None:
    who = AuditContext(actor="cli:bob", request_id=str(uuid.uuid4()))
    org_id, _ = stored_workspace(context)
    secrets.set_secret(context, "org", org_id, "OPENAI_API_KEY", "sk-SENTINEL-1", audit_context=who)
    secrets.set_secret(context, "org", org_id, "OPENAI_API_KEY", "sk-SENTINEL-2", audit_context=who)
    first, second = _audit(context, who.request_id)
    assert first["before"] is None
    assert first["after"] == {"name": "OPENAI_API_KEY", "scope": "org", "key_version": 1}
    assert second["before"] == {"name": "OPENAI_API_KEY", "scope": "org", "key_version": 1}
    assert "SENTINEL" not in str(first) + str(second)


def test_a_failed_write_leaves_no_audit_entry(context: ServiceContext) -> None:
    who = AuditContext(request_id=str(uuid.uuid4()))
    with pytest.raises(OrgNotFoundError):
        admin.create_workspace(context, uuid.uuid4(), audit_context=who)
    assert _audit(context, who.request_id) == []


@pytest.mark.parametrize("mode", ["BYOK", "byokk", "", "platform-managed"])
def test_an_override_must_be_an_exact_mode(context: ServiceContext, mode: str) -> None:
    _, workspace_id = stored_workspace(context)
    with pytest.raises(InvalidInputError) as raised:
        admin.set_override(context, workspace_id, mode)
    assert raised.value.allowed == ("platform_managed", "byok", "disabled")


@pytest.mark.parametrize(
    ("raw", "recognized"), [("  BYOK ", BillingMode.BYOK), ("Disabled", BillingMode.DISABLED)]
)
def test_an_org_default_is_stored_raw_and_shown_recognized(
    context: ServiceContext, raw: str, recognized: BillingMode
) -> None:
    org = admin.create_org(context, "acme", billing_mode_default=raw)
    assert (org.billing_mode_default_raw, org.billing_mode_default) == (raw, recognized)


def test_an_org_default_that_is_no_mode_is_refused(context: ServiceContext) -> None:
    with pytest.raises(InvalidInputError, match="billing_mode_default"):
        admin.create_org(context, "acme", billing_mode_default="byokk")


def test_creating_with_a_taken_id_is_a_typed_error(context: ServiceContext) -> None:
    org = admin.create_org(context, "acme")
    with pytest.raises(AlreadyExistsError):
        admin.create_org(context, "again", org_id=org.id)


def test_unknown_ids_are_typed_not_found_errors(context: ServiceContext) -> None:
    with pytest.raises(OrgNotFoundError):
        admin.get_org(context, uuid.uuid4())
    with pytest.raises(WorkspaceNotFoundError):
        admin.set_override(context, uuid.uuid4(), "byok")


def test_listing_filters_by_org_and_by_decided_mode(make_context: ContextFactory) -> None:
    context = make_context()
    org = admin.create_org(context, "fleet", billing_mode_default="byok")
    pinned = admin.create_workspace(context, org.id, override="disabled")
    inheriting = admin.create_workspace(context, org.id)
    other_org, _ = stored_workspace(context)

    everything = admin.list_workspaces(context, org_id=org.id)
    disabled = admin.list_workspaces(context, org_id=org.id, mode="disabled")

    assert {w.workspace.id for w in everything} == {pinned.id, inheriting.id}
    assert [w.workspace.id for w in disabled] == [pinned.id]
    assert disabled[0].decision.mode is BillingMode.DISABLED
    assert all(w.workspace.org_id != other_org for w in everything)


def test_secret_listings_show_names_scope_and_key_version(context: ServiceContext) -> None:
    _, workspace_id = stored_workspace(
        context, workspace_secrets={"OPENAI_API_KEY": "v1", "GITHUB_TOKEN": "v2"}
    )
    listed = [i.to_dict() for i in secrets.list_secrets(context, "workspace", workspace_id)]
    assert [(i["name"], i["scope"], i["key_version"]) for i in listed] == [
        ("GITHUB_TOKEN", "workspace", 1),
        ("OPENAI_API_KEY", "workspace", 1),
    ]
    assert set(listed[0]) == {"name", "scope", "owner_id", "key_version", "updated_at"}


@pytest.mark.parametrize(
    "name", ["lowercase", "1STARTS_WITH_DIGIT", "HAS-DASH", "MOLECULE_LLM_BASE_URL"]
)
def test_secret_names_must_be_env_names_outside_the_platform_namespace(
    context: ServiceContext, name: str
) -> None:
    org_id, _ = stored_workspace(context)
    with pytest.raises(InvalidInputError):
        secrets.set_secret(context, "org", org_id, name, "value")


def _org_rows(context: ServiceContext, org_id: uuid.UUID) -> tuple[int, int]:
    """How many workspaces and audit entries the org has."""
    with context.store.read_engine.connect() as connection:
        counts = [
            connection.execute(
                select(func.count()).select_from(table).where(table.c.org_id == org_id)
            ).scalar_one()
            for table in (workspaces, audit_log)
        ]
    return counts[0], counts[1]


def _stored_runtime(context: ServiceContext, workspace_id: uuid.UUID) -> str:
    with context.store.read_engine.connect() as connection:
        runtime: str = connection.execute(
            select(workspaces.c.runtime).where(workspaces.c.id == workspace_id)
        ).scalar_one()
    return runtime


def _allowed_runtimes(context: ServiceContext) -> str:
    return ", ".join(sorted(context.require_registry().runtimes))


@pytest.mark.parametrize(
    "runtime", ["clade-code", "nosuch", "", "   ", "claude code", "platform/claude-code"]
)
def test_a_runtime_the_registry_does_not_know_is_refused_naming_the_allowed_runtimes(
    context: ServiceContext, runtime: str
) -> None:
    org = admin.create_org(context, "acme")
    with pytest.raises(InvalidInputError) as raised:
        admin.create_workspace(context, org.id, runtime=runtime)
    assert raised.value.code == "INVALID_INPUT"
    assert raised.value.field == "runtime"
    assert raised.value.allowed == tuple(sorted(context.require_registry().runtimes))
    assert raised.value.message == (
        f"runtime: {runtime!r} is not a runtime of the provider registry"
        f" (allowed: {_allowed_runtimes(context)})"
    )


def test_a_refused_runtime_writes_no_workspace_and_no_audit_entry(
    context: ServiceContext,
) -> None:
    org = admin.create_org(context, "acme")
    before = _org_rows(context, org.id)
    who = AuditContext(request_id=str(uuid.uuid4()))
    with pytest.raises(InvalidInputError):
        admin.create_workspace(context, org.id, runtime="clade-code", audit_context=who)
    assert _org_rows(context, org.id) == before == (0, 1)  # the org.created entry only
    assert _audit(context, who.request_id) == []


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        (" Claude-Code ", "claude-code"),
        ("CODEX", "codex"),
        ("\tCodeX\n", "codex"),
        ("codex", "codex"),
    ],
)
def test_a_known_runtime_is_matched_trimmed_and_any_case_and_stored_normalized(
    context: ServiceContext, given: str, stored: str
) -> None:
    org = admin.create_org(context, "acme")
    who = AuditContext(request_id=str(uuid.uuid4()))
    workspace = admin.create_workspace(context, org.id, runtime=given, audit_context=who)
    assert workspace.runtime == stored
    assert _stored_runtime(context, workspace.id) == stored
    assert _audit(context, who.request_id)[0]["after"]["runtime"] == stored


def test_without_a_runtime_the_default_is_stored_and_is_a_registry_runtime(
    context: ServiceContext,
) -> None:
    assert DEFAULT_RUNTIME in context.require_registry().runtimes
    org = admin.create_org(context, "acme")
    workspace = admin.create_workspace(context, org.id)
    assert _stored_runtime(context, workspace.id) == DEFAULT_RUNTIME


def test_the_default_runtime_is_refused_too_by_a_registry_without_it(
    context: ServiceContext,
) -> None:
    registry = context.require_registry()
    without_default = dataclasses.replace(
        registry, runtimes={k: v for k, v in registry.runtimes.items() if k != DEFAULT_RUNTIME}
    )
    narrow = ServiceContext(
        context.store,
        context.deployment,
        without_default,
        key_ring_loader=lambda: context.key_ring,
    )
    org = admin.create_org(narrow, "acme")
    with pytest.raises(InvalidInputError) as raised:
        admin.create_workspace(narrow, org.id)
    assert raised.value.field == "runtime"
    assert DEFAULT_RUNTIME not in (raised.value.allowed or ())
    assert _org_rows(narrow, org.id)[0] == 0


def test_with_no_registry_loaded_a_workspace_write_fails_closed_with_the_load_error(
    context: ServiceContext,
) -> None:
    load_error = RegistryError("registry.yaml", "", "cannot be read")
    broken = ServiceContext(
        context.store,
        DeploymentInputs(proxy=context.deployment.proxy, org_default=None),
        None,
        key_ring_loader=lambda: context.key_ring,
        registry_error=load_error,
    )
    org = admin.create_org(broken, "acme")
    with pytest.raises(RegistryError) as raised:
        admin.create_workspace(broken, org.id, runtime="claude-code")
    assert raised.value is load_error
    assert _org_rows(broken, org.id) == (0, 1)
