"""OFREP evaluation: an evaluation context becomes the decision the read path makes for it.

Two targets (docs/OFREP.md):

- ``context.targetingKey`` = a workspace id: the decision is the one the decision GET returns
  (:func:`~llmbilling.service.resolve.read_decision_on_loop`, the same code path), so it
  answers through a store outage with ``constant_fallback`` as the GET does.
- no ``targetingKey`` (or an empty one) but ``context.orgId``: the pre-provision path, no
  workspace: the org's stored default and its secrets' names, the ``runtime`` and ``model`` of
  the context (``stored_inputs``, then the core, as every reader does).

An unknown target and one outside the caller's org get the same failure, so ids are never
confirmed. Change events: :func:`watch_scope` tells a subscriber when a decision it may read
may have changed (the store's change feed, filtered to the caller's org).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from llmbilling.core.decision import BillingDecision
from llmbilling.core.ofrep import EvaluationErrorCode, EvaluationFailure
from llmbilling.core.resolve import resolve_billing_mode
from llmbilling.errors import WorkspaceNotFoundError
from llmbilling.service.context import ServiceContext, reading
from llmbilling.service.resolve import decision_time, read_decision_on_loop, stored_inputs
from llmbilling.store import orgs as stored_orgs
from llmbilling.store import secrets as stored_secrets
from llmbilling.store.change_feed import ChangeKind, FeedEvent, FeedRestored, StoreChange

ReadableOrg = Callable[[UUID], bool]
"""Whether the caller may read an org (the API's ``Principal.can_read``)."""


@dataclass(frozen=True, slots=True)
class WorkspaceTarget:
    workspace_id: UUID


@dataclass(frozen=True, slots=True)
class PreProvisionTarget:
    """No workspace yet: the org, and the runtime and model the workspace would have."""

    org_id: UUID
    runtime: str | None
    model: str | None


Target = WorkspaceTarget | PreProvisionTarget


@dataclass(frozen=True, slots=True)
class TargetDecision:
    """The decision for a target; ``from_store`` is False when nothing stored could be read
    (``constant_fallback``): an answer then carries no entity tag."""

    decision: BillingDecision
    from_store: bool


_NOT_VISIBLE_WORKSPACE = EvaluationFailure(
    EvaluationErrorCode.INVALID_CONTEXT,
    "context.targetingKey names no workspace this token may read",
)
_NOT_VISIBLE_ORG = EvaluationFailure(
    EvaluationErrorCode.INVALID_CONTEXT, "context.orgId names no org this token may read"
)


def _invalid(details: str) -> EvaluationFailure:
    return EvaluationFailure(EvaluationErrorCode.INVALID_CONTEXT, details)


def parse_evaluation_request(body: bytes) -> Target | EvaluationFailure:
    """The target of an OFREP request body ``{"context": {...}}``, or why there is none:
    ``PARSE_ERROR`` (not JSON), ``TARGETING_KEY_MISSING`` (neither a targeting key nor an
    org), ``INVALID_CONTEXT`` (a member of the wrong type or form, named in the details)."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return EvaluationFailure(EvaluationErrorCode.PARSE_ERROR, "the request body is not JSON")
    if not isinstance(document, dict):
        return _invalid('the request body must be an object: {"context": {...}}')
    context = document.get("context")
    if not isinstance(context, dict):
        return _invalid("context: required, an object (the evaluation context)")
    targeting_key = context.get("targetingKey")
    if targeting_key is not None and not isinstance(targeting_key, str):
        return _invalid("context.targetingKey: must be a string (a workspace id)")
    if targeting_key:
        workspace_id = _uuid(targeting_key)
        if workspace_id is None:
            return _invalid("context.targetingKey: must be a workspace id (a UUID)")
        return WorkspaceTarget(workspace_id)
    org_text = context.get("orgId")
    if org_text is None:
        return EvaluationFailure(
            EvaluationErrorCode.TARGETING_KEY_MISSING,
            "context.targetingKey: required (a workspace id); or, before a workspace exists,"
            " context.orgId with context.runtime and context.model",
        )
    org_id = _uuid(org_text) if isinstance(org_text, str) else None
    if org_id is None:
        return _invalid("context.orgId: must be an org id (a UUID)")
    runtime, model = context.get("runtime"), context.get("model")
    for name, value in (("runtime", runtime), ("model", model)):
        if value is not None and not isinstance(value, str):
            return _invalid(f"context.{name}: must be a string")
    return PreProvisionTarget(org_id, runtime, model)


def _uuid(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None


async def decide_target(
    context: ServiceContext, target: Target, can_read: ReadableOrg
) -> TargetDecision | EvaluationFailure:
    """The decision for ``target`` as the caller may see it; the same failure for an unknown
    target and a foreign one. Raises ``StoreUnavailableError`` on the pre-provision path when
    the store cannot answer (the workspace path answers ``constant_fallback`` instead)."""
    if isinstance(target, WorkspaceTarget):
        try:
            stored = await read_decision_on_loop(context, target.workspace_id)
        except WorkspaceNotFoundError:
            return _NOT_VISIBLE_WORKSPACE
        if stored.org_id is not None and not can_read(stored.org_id):
            return _NOT_VISIBLE_WORKSPACE
        return TargetDecision(stored.decision, from_store=stored.state is not None)
    # Asked before anything is read, so a foreign org is not even looked up.
    if not can_read(target.org_id):
        return _NOT_VISIBLE_ORG
    decision = await asyncio.to_thread(decide_before_provision, context, target)
    return _NOT_VISIBLE_ORG if decision is None else TargetDecision(decision, from_store=True)


def decide_before_provision(
    context: ServiceContext, target: PreProvisionTarget
) -> BillingDecision | None:
    """The pre-provision decision (no workspace id), None when no org has the id: the org's
    stored default and its secrets' names, with the target's runtime and model."""
    with reading(context) as connection:
        org = stored_orgs.read_org(connection, target.org_id)
        if org is None:
            return None
        names = stored_secrets.secret_names(connection, "org", target.org_id)
    inputs = stored_inputs(
        context,
        workspace_id=None,
        override=None,
        org_default=org.billing_mode_default_raw,
        runtime=target.runtime,
        model=target.model,
        auth_env=frozenset(secret.name for secret in names),
        override_expires_at=None,
        now=decision_time(),
    )
    return resolve_billing_mode(inputs, context.registry, context.policy)


# The writes that can change a decision (a token or a change plan changes none).
DECISION_INPUTS = frozenset(
    {ChangeKind.OVERRIDE, ChangeKind.ORG_DEFAULT, ChangeKind.SECRET, ChangeKind.WORKSPACE}
)


def watch_scope(
    context: ServiceContext,
    *,
    every_org: bool,
    org_id: UUID | None,
    notify: Callable[[], None],
) -> Callable[[], None]:
    """Call ``notify`` (on the feed's thread or a committing one: it must not block) whenever a
    decision in the caller's scope may have changed: a committed change of a decision input of
    its org (every org's with ``every_org``) or fleet-wide, and the feed coming back after a
    loss (anything may have changed meanwhile; while it is lost nothing can be told). Returns
    the unsubscribe."""

    def on_event(event: FeedEvent) -> None:
        if isinstance(event, StoreChange):
            in_scope = every_org or event.org_id is None or event.org_id == org_id
            if in_scope and event.kind in DECISION_INPUTS:
                notify()
        elif isinstance(event, FeedRestored):
            notify()

    return context.change_feed.subscribe(on_event)
