"""Which committed changes tell an OFREP event stream to refetch (``service/ofrep.py``
``watch_scope``), on both engines: the committing process's own feed delivers at commit, so
each write's effect is known when it returns."""

from __future__ import annotations

import uuid

import pytest

from llmbilling.service import admin, secrets
from llmbilling.service.audit import AuditContext
from llmbilling.service.context import ServiceContext
from llmbilling.service.ofrep import watch_scope
from llmbilling.service.tokens import Scope, create_token

WHO = AuditContext(actor="test", request_id="test")


def _org(context: ServiceContext) -> uuid.UUID:
    return admin.create_org(context, f"org-{uuid.uuid4().hex[:6]}").id


@pytest.mark.parametrize("every_org", [False, True])
def test_a_change_in_the_watchers_org_is_told(context: ServiceContext, every_org: bool) -> None:
    org_id = _org(context)
    workspace = admin.create_workspace(context, org_id, runtime="codex", model="gpt-5.5")
    told: list[None] = []
    unsubscribe = watch_scope(
        context, every_org=every_org, org_id=org_id, notify=lambda: told.append(None)
    )
    try:
        admin.set_override(context, workspace.id, "disabled", audit_context=WHO)
        after_override = len(told)
        admin.set_org_default(context, org_id, "byok", audit_context=WHO)
        after_default = len(told)
        secrets.set_secret(context, "org", org_id, "OPENAI_API_KEY", "sk-test-value")
        after_secret = len(told)
    finally:
        unsubscribe()
    assert (after_override, after_default, after_secret) == (1, 2, 3)


def test_a_change_in_another_org_is_not_told_to_an_org_token(context: ServiceContext) -> None:
    own, foreign = _org(context), _org(context)
    foreign_workspace = admin.create_workspace(context, foreign, runtime="codex", model="gpt-5.5")
    told: list[None] = []
    unsubscribe = watch_scope(
        context, every_org=False, org_id=own, notify=lambda: told.append(None)
    )
    try:
        admin.set_override(context, foreign_workspace.id, "disabled", audit_context=WHO)
        admin.set_org_default(context, foreign, "byok", audit_context=WHO)
    finally:
        unsubscribe()
    assert told == []


def test_a_token_write_changes_no_decision_and_is_not_told(context: ServiceContext) -> None:
    org_id = _org(context)
    told: list[None] = []
    unsubscribe = watch_scope(
        context, every_org=True, org_id=None, notify=lambda: told.append(None)
    )
    try:
        create_token(context, scope=Scope.VIEWER, org_id=org_id)
    finally:
        unsubscribe()
    assert told == []


def test_after_unsubscribing_nothing_is_told(context: ServiceContext) -> None:
    org_id = _org(context)
    workspace = admin.create_workspace(context, org_id, runtime="codex", model="gpt-5.5")
    told: list[None] = []
    watch_scope(context, every_org=True, org_id=None, notify=lambda: told.append(None))()
    admin.set_override(context, workspace.id, "byok", audit_context=WHO)
    assert told == []
