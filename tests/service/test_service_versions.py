"""Row versions and compare-and-set writes: every write of a row bumps it; a write that expects
a version the row is no longer at changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace

import pytest
from sqlalchemy import select
from tests.store.db_fixtures import stored_workspace

from llmbilling.errors import PreconditionFailedError
from llmbilling.service import admin
from llmbilling.service.audit import AuditContext
from llmbilling.service.context import ServiceContext
from llmbilling.service.provision import provision_workspace
from llmbilling.service.resolve import DecisionVersion, read_decision
from llmbilling.store.tables import audit_log


def _version(context: ServiceContext, workspace_id: uuid.UUID) -> DecisionVersion:
    version = read_decision(context, workspace_id).version
    assert version is not None
    return version


def test_new_rows_start_at_version_one(context: ServiceContext) -> None:
    _, workspace_id = stored_workspace(context)

    version = _version(context, workspace_id)

    assert (version.workspace_version, version.org_version) == (1, 1)


def test_each_write_of_a_row_bumps_its_version(context: ServiceContext) -> None:
    org_id, workspace_id = stored_workspace(context, model="platform/claude-opus-4-7")

    admin.set_override(context, workspace_id, "byok")
    admin.set_override(context, workspace_id, None)
    provision_workspace(context, workspace_id, request_model="platform/gpt-5.5")
    admin.set_org_default(context, org_id, "byok")

    version = _version(context, workspace_id)
    assert (version.workspace_version, version.org_version) == (4, 2)


@pytest.mark.parametrize(
    "stale",
    [
        lambda v: replace(v, workspace_version=v.workspace_version - 1),
        lambda v: replace(v, org_version=v.org_version + 1),
        lambda v: replace(v, record_digest="0" * 16),
    ],
    ids=["workspace row moved on", "org row moved on", "decision changed"],
)
def test_an_override_write_expecting_a_stale_version_changes_nothing(
    context: ServiceContext, stale: Callable[[DecisionVersion], DecisionVersion]
) -> None:
    _, workspace_id = stored_workspace(context)
    admin.set_override(context, workspace_id, "disabled")
    who = AuditContext(request_id=str(uuid.uuid4()))

    with pytest.raises(PreconditionFailedError):
        admin.set_override(
            context,
            workspace_id,
            "byok",
            audit_context=who,
            expected_versions=[stale(_version(context, workspace_id))],
        )

    assert admin.get_workspace(context, workspace_id).override == "disabled"
    with context.store.read_engine.connect() as connection:
        written = connection.execute(
            select(audit_log.c.id).where(audit_log.c.request_id == who.request_id)
        ).all()
    assert written == []


def test_an_override_write_expecting_the_current_version_succeeds(
    context: ServiceContext,
) -> None:
    _, workspace_id = stored_workspace(context)

    admin.set_override(
        context, workspace_id, "byok", expected_versions=[_version(context, workspace_id)]
    )

    assert admin.get_workspace(context, workspace_id).override == "byok"


def test_an_org_default_write_is_a_compare_and_set_on_the_org_row(
    context: ServiceContext,
) -> None:
    org_id, _ = stored_workspace(context)
    seen = admin.get_org(context, org_id).row_version

    admin.set_org_default(context, org_id, "byok", expected_versions=[seen])
    with pytest.raises(PreconditionFailedError):
        admin.set_org_default(context, org_id, "disabled", expected_versions=[seen])

    assert admin.get_org(context, org_id).billing_mode_default_raw == "byok"
