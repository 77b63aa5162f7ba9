"""Use cases on organizations and workspaces. Every write is audited in its own transaction."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from llmbilling.core.decision import BillingDecision, ProvisioningStatus
from llmbilling.core.modes import (
    MODE_VALUES,
    BillingMode,
    DecisionSource,
    recognize_mode,
    recognize_normalized_mode,
)
from llmbilling.errors import (
    AlreadyExistsError,
    InvalidInputError,
    OrgNotFoundError,
    PreconditionFailedError,
    WorkspaceNotFoundError,
)
from llmbilling.service import audit
from llmbilling.service.audit import AuditContext
from llmbilling.service.context import ServiceContext, parse_id, reading, writing
from llmbilling.service.resolve import (
    DecisionVersion,
    StoredDecision,
    decide_from_state,
    decision_time,
)
from llmbilling.store import orgs as stored_orgs
from llmbilling.store import workspaces as stored_workspaces
from llmbilling.store.engine import Connection
from llmbilling.store.orgs import org_exists
from llmbilling.store.workspace_read import (
    WorkspaceState,
    read_workspace_state,
    read_workspace_states,
)
from llmbilling.store.workspaces import DEFAULT_RUNTIME, StoredWorkspace

LIST_PAGE_SIZE = 500
SOURCE_VALUES: tuple[str, ...] = tuple(source.value for source in DecisionSource)
MAX_REASON_LENGTH = 500
# No C0/C1 control characters or DEL: a reason is one line of text for people.
REASON_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
_REASON = re.compile(REASON_PATTERN)
PROVISIONING_FILTER_VALUES: tuple[str, ...] = (
    "ok",
    "failing",
    *(status.value for status in ProvisioningStatus if status is not ProvisioningStatus.OK),
)


def parse_reason(reason: str | None) -> str | None:
    """A write's reason as the audit log keeps it: None when absent or blank; at most
    :data:`MAX_REASON_LENGTH` characters, none of them a control character (line breaks and
    tabs included)."""
    if reason is None or not reason.strip():
        return None
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidInputError("reason", f"must be at most {MAX_REASON_LENGTH} characters")
    if not _REASON.match(reason):
        raise InvalidInputError("reason", "must be one line: no control characters or line breaks")
    return reason


def parse_expiry(expires_at: str | datetime | None, now: datetime) -> datetime | None:
    """An override's expiry as a write stores it (UTC): RFC 3339 text (or an aware datetime)
    with a time zone, later than ``now``. None when absent."""
    if expires_at is None:
        return None
    if isinstance(expires_at, datetime):
        moment = expires_at
    else:
        try:
            moment = datetime.fromisoformat(expires_at.strip())
        except ValueError:
            raise InvalidInputError(
                "expires_at",
                f"{expires_at!r} is not an RFC 3339 time (e.g. 2030-01-31T12:00:00Z)",
            ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInputError("expires_at", "must name its time zone (e.g. Z or +02:00)")
    if moment <= now:
        raise InvalidInputError("expires_at", f"must be in the future (now: {now.isoformat()})")
    return moment.astimezone(UTC)


def with_reason(entry: dict[str, Any], reason: str | None) -> dict[str, Any]:
    """An audit entry's ``after`` with the write's reason (a parsed one), when there is one."""
    return entry if reason is None else {**entry, "reason": reason}


@dataclass(frozen=True, slots=True)
class OrgView:
    id: UUID
    name: str
    billing_mode_default_raw: str | None
    billing_mode_default: BillingMode | None
    workspace_count: int
    created_at: datetime
    row_version: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "llm_billing_mode_default": {
                "raw": self.billing_mode_default_raw,
                "recognized": _mode_value(self.billing_mode_default),
            },
            "workspace_count": self.workspace_count,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class WorkspaceView:
    id: UUID
    org_id: UUID
    name: str | None
    runtime: str
    model: str | None
    override: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "org_id": str(self.org_id),
            "name": self.name,
            "runtime": self.runtime,
            "model": self.model,
            "llm_billing_mode": self.override,
        }


@dataclass(frozen=True, slots=True)
class WorkspaceWithDecision:
    workspace: WorkspaceView
    decision: BillingDecision


def _mode_value(mode: BillingMode | None) -> str | None:
    return None if mode is None else mode.value


# --- organizations ---------------------------------------------------------------------------


def parse_org_default(raw: str | None, field: str = "mode") -> str | None:
    """An org default as an admin may set it: any text that normalizes to a mode, kept raw.
    ``field`` is the name the caller gave it under (errors name it)."""
    if raw is None:
        return None
    if recognize_normalized_mode(raw) is None:
        raise InvalidInputError(field, f"{raw!r} is not a mode", MODE_VALUES)
    return raw


def create_org(
    context: ServiceContext,
    name: str,
    *,
    billing_mode_default: str | None = None,
    org_id: UUID | None = None,
    audit_context: AuditContext | None = None,
) -> OrgView:
    if not name.strip():
        raise InvalidInputError("name", "must not be blank")
    raw_default = parse_org_default(billing_mode_default, "billing_mode_default")
    new_id = org_id or uuid.uuid4()
    who = audit_context or AuditContext()
    stamp = audit.now()
    with writing(context) as connection:
        if not stored_orgs.insert_org(
            connection,
            org_id=new_id,
            name=name,
            billing_mode_default_raw=raw_default,
            stamp=stamp,
        ):
            raise AlreadyExistsError(f"an organization with id {new_id} already exists")
        audit.record(
            connection,
            who,
            "org.created",
            org_id=new_id,
            after={"name": name, "llm_billing_mode_default": raw_default},
        )
        return _org_in(connection, new_id)


def get_org(context: ServiceContext, org_id: str | UUID) -> OrgView:
    parsed = parse_id("org_id", org_id)
    with reading(context) as connection:
        return _org_in(connection, parsed)


def _org_in(connection: Connection, org_id: UUID) -> OrgView:
    """The org as ``connection`` sees it (a write's own transaction, or a read)."""
    row = stored_orgs.read_org(connection, org_id)
    if row is None:
        raise OrgNotFoundError(org_id)
    raw = row.billing_mode_default_raw
    return OrgView(
        id=row.id,
        name=row.name,
        billing_mode_default_raw=raw,
        billing_mode_default=None if raw is None else recognize_normalized_mode(raw),
        workspace_count=row.workspace_count,
        created_at=row.created_at,
        row_version=row.row_version,
    )


def set_org_default(
    context: ServiceContext,
    org_id: str | UUID,
    raw: str | None,
    *,
    audit_context: AuditContext | None = None,
    expected_versions: Collection[int] | None = None,
    reason: str | None = None,
    under_lock: Callable[[Connection], None] | None = None,
) -> OrgView:
    """Set (or, with None, clear) an org's default. Stored raw as given; answers the org as
    the write's own transaction left it. ``reason`` (see :func:`parse_reason`) is kept in the
    audit entry. A write that stores what is already stored changes nothing: no audit entry,
    no version bump.

    With ``expected_versions`` (the ``row_version``s the caller accepts) the write is a
    compare-and-set: :class:`PreconditionFailedError` when the row is at none of them.
    ``under_lock`` is called with the write's connection once the org row is locked, before
    anything changes, and may raise (a change plan's version check, the danger guard).
    """
    parsed = parse_id("org_id", org_id)
    raw_default = parse_org_default(raw)
    why = parse_reason(reason)
    who = audit_context or AuditContext()
    with writing(context) as connection:
        before = stored_orgs.lock_org_default(connection, parsed)
        if before is None:
            raise OrgNotFoundError(parsed)
        if under_lock is not None:
            under_lock(connection)
        # The row is locked (FOR UPDATE; SQLite's BEGIN IMMEDIATE): the version read here is
        # the one the write moves on from.
        if expected_versions is not None and before.row_version not in expected_versions:
            raise PreconditionFailedError(f"organization {parsed}")
        if before.raw == raw_default:
            return _org_in(connection, parsed)
        stored_orgs.write_org_default(connection, parsed, raw_default, updated_at=audit.now())
        audit.record(
            connection,
            who,
            "org.billing_mode_default_set"
            if raw_default is not None
            else "org.billing_mode_default_cleared",
            org_id=parsed,
            before={"llm_billing_mode_default": before.raw},
            after=with_reason({"llm_billing_mode_default": raw_default}, why),
        )
        return _org_in(connection, parsed)


# --- workspaces ------------------------------------------------------------------------------


def _workspace_view(row: StoredWorkspace) -> WorkspaceView:
    return WorkspaceView(
        id=row.id,
        org_id=row.org_id,
        name=row.name,
        runtime=row.runtime,
        model=row.model,
        override=row.override,
    )


def parse_override(mode: str) -> BillingMode:
    recognized = recognize_mode(mode)
    if recognized is None:
        raise InvalidInputError("mode", f"{mode!r} is not a billing mode", MODE_VALUES)
    return recognized


def parse_runtime(context: ServiceContext, runtime: str) -> str:
    """A runtime as a write may store it: a runtime id of the context's registry, matched
    trimmed and lower-cased as derivation matches it, and returned in that normalized form.

    :class:`InvalidInputError` naming the registry's runtime ids (sorted) for anything else.
    With no registry loaded nothing can be checked, so the registry's load error is raised
    (fail closed) rather than storing an unchecked runtime. Reads never call this: rows other
    tools wrote with unknown runtimes still resolve (``unknown_runtime``).
    """
    registry = context.require_registry()
    key = runtime.strip().lower()
    if key not in registry.runtimes:
        raise InvalidInputError(
            "runtime",
            f"{runtime!r} is not a runtime of the provider registry",
            sorted(registry.runtimes),
        )
    return key


def create_workspace(
    context: ServiceContext,
    org_id: str | UUID,
    *,
    runtime: str = DEFAULT_RUNTIME,
    model: str | None = None,
    name: str | None = None,
    override: str | None = None,
    workspace_id: UUID | None = None,
    audit_context: AuditContext | None = None,
) -> WorkspaceView:
    parsed_org = parse_id("org_id", org_id)
    runtime_id = parse_runtime(context, runtime)
    mode = None if override is None else parse_override(override).value
    model_text = model.strip() if model and model.strip() else None
    new_id = workspace_id or uuid.uuid4()
    who = audit_context or AuditContext()
    stamp = audit.now()
    values = {
        "id": new_id,
        "org_id": parsed_org,
        "name": name,
        "runtime": runtime_id,
        "model": model_text,
        "llm_billing_mode": mode,
    }
    with writing(context) as connection:
        if not org_exists(connection, parsed_org):
            raise OrgNotFoundError(parsed_org)
        if not stored_workspaces.insert_workspace(
            connection,
            workspace_id=new_id,
            org_id=parsed_org,
            name=name,
            runtime=runtime_id,
            model=model_text,
            override=mode,
            stamp=stamp,
        ):
            raise AlreadyExistsError(f"a workspace with id {new_id} already exists")
        after = {k: v for k, v in values.items() if k not in ("id", "org_id")}
        audit.record(
            connection,
            who,
            "workspace.created",
            org_id=parsed_org,
            workspace_id=new_id,
            after=after,
        )
        return _workspace_in(connection, new_id)


def get_workspace(context: ServiceContext, workspace_id: str | UUID) -> WorkspaceView:
    parsed = parse_id("workspace_id", workspace_id)
    with reading(context) as connection:
        return _workspace_in(connection, parsed)


def _workspace_in(connection: Connection, workspace_id: UUID) -> WorkspaceView:
    """The workspace as ``connection`` sees it (a write's own transaction, or a read)."""
    row = stored_workspaces.read_workspace(connection, workspace_id)
    if row is None:
        raise WorkspaceNotFoundError(workspace_id)
    return _workspace_view(row)


def set_override(
    context: ServiceContext,
    workspace_id: str | UUID,
    mode: str | None,
    *,
    audit_context: AuditContext | None = None,
    expected_versions: Collection[DecisionVersion] | None = None,
    authorize: Callable[[UUID], None] | None = None,
    reason: str | None = None,
    expires_at: str | datetime | None = None,
    under_lock: Callable[[Connection], None] | None = None,
) -> StoredDecision:
    """Set the workspace override to an exact mode, or clear it (inherit) with None; answers
    the decision the write's own transaction produced (so a committed write never needs a
    second read to answer).

    Raises :class:`InvalidInputError` naming the allowed modes for anything else. ``authorize``
    is called with the workspace's org under the row lock, before anything changes, and may
    raise (the caller's access rule). With ``expected_versions`` (the versions of the
    decisions the caller accepts) the write happens only if the current decision is at one of
    them, else :class:`PreconditionFailedError`: the version is computed in the transaction,
    the workspace row locked, and the UPDATE requires both row versions (compare-and-set).

    ``reason`` (see :func:`parse_reason`) is kept in the audit entry. ``expires_at`` (see
    :func:`parse_expiry`; only with a mode) ends the override's authority: past it the
    override no longer decides. A write that stores what is already stored (same mode, same
    expiry) changes nothing: it answers as any write does, with no audit entry and no version
    bump. ``under_lock`` is called with the write's connection after ``authorize``, before
    anything changes, and may raise (a change plan's version check, the danger guard).
    """
    parsed = parse_id("workspace_id", workspace_id)
    new_mode = None if mode is None else parse_override(mode).value
    new_expiry = parse_expiry(expires_at, decision_time())
    if new_mode is None and new_expiry is not None:
        raise InvalidInputError("expires_at", "only an override that sets a mode can expire")
    why = parse_reason(reason)
    who = audit_context or AuditContext()
    with writing(context) as connection:
        row = stored_workspaces.lock_override(connection, parsed)
        if row is None:
            raise WorkspaceNotFoundError(parsed)
        if authorize is not None:
            authorize(row.org_id)
        if under_lock is not None:
            under_lock(connection)
        expected: tuple[int, int] | None = None
        if expected_versions is not None:
            seen = _locked_state(connection, parsed)
            current = DecisionVersion.of(seen, decide_from_state(context, seen))
            if current not in expected_versions:
                raise PreconditionFailedError(f"the decision of workspace {parsed}")
            expected = (current.workspace_version, current.org_version)
        if (row.override, row.expires_at) == (new_mode, new_expiry):
            unchanged = _locked_state(connection, parsed)
            return StoredDecision(decide_from_state(context, unchanged), unchanged)
        if not stored_workspaces.write_override(
            connection,
            parsed,
            new_mode,
            expires_at=new_expiry,
            updated_at=audit.now(),
            expected_versions=expected,
        ):
            raise PreconditionFailedError(f"the decision of workspace {parsed}")
        audit.record(
            connection,
            who,
            "workspace.override_set" if new_mode is not None else "workspace.override_cleared",
            org_id=row.org_id,
            workspace_id=parsed,
            before=_override_entry(row.override, row.expires_at),
            after=with_reason(_override_entry(new_mode, new_expiry), why),
        )
        written = _locked_state(connection, parsed)
    return StoredDecision(decide_from_state(context, written), written)


def _override_entry(mode: str | None, expires_at: datetime | None) -> dict[str, Any]:
    """An override as its audit entries show it (the expiry only when it has one)."""
    entry: dict[str, Any] = {"llm_billing_mode": mode}
    if expires_at is not None:
        entry["override_expires_at"] = expires_at.isoformat()
    return entry


def _locked_state(connection: Connection, workspace_id: UUID) -> WorkspaceState:
    """The state of a workspace whose row this transaction has locked (so it exists)."""
    state = read_workspace_state(connection, workspace_id)
    assert state is not None
    return state


def parse_source(source: str) -> DecisionSource:
    try:
        return DecisionSource(source)
    except ValueError:
        raise InvalidInputError(
            "source", f"{source!r} is not a decision source", SOURCE_VALUES
        ) from None


def parse_provisioning_filter(value: str) -> frozenset[ProvisioningStatus]:
    """The verdicts a ``provisioning`` filter admits: ``ok``; ``failing`` (every verdict but
    ok, ``unknown`` included: such a workspace cannot be shown to provision); or one code."""
    if value == "failing":
        return frozenset(ProvisioningStatus) - {ProvisioningStatus.OK}
    try:
        return frozenset({ProvisioningStatus(value)})
    except ValueError:
        raise InvalidInputError(
            "provisioning", f"{value!r} is not a provisioning filter", PROVISIONING_FILTER_VALUES
        ) from None


def list_workspaces(
    context: ServiceContext,
    *,
    org_id: str | UUID | None = None,
    mode: str | None = None,
    source: str | None = None,
    provisioning: str | None = None,
    after: UUID | None = None,
    limit: int = 100,
) -> list[WorkspaceWithDecision]:
    """Workspaces in id order with their decisions, starting after the id ``after``.

    ``mode`` and ``source`` filter on the DECIDED mode and source; ``provisioning`` on the
    decision's provisioning verdict (see :func:`parse_provisioning_filter`). Reads in pages
    (one statement per page), so a filter that matches few workspaces of a large fleet still
    stops at ``limit`` matches.
    """
    parsed_org = None if org_id is None else parse_id("org_id", org_id)
    wanted = None if mode is None else parse_override(mode)
    wanted_source = None if source is None else parse_source(source)
    wanted_provisioning = None if provisioning is None else parse_provisioning_filter(provisioning)
    if limit < 1:
        raise InvalidInputError("limit", "must be at least 1")
    found: list[WorkspaceWithDecision] = []
    with reading(context) as connection:
        while len(found) < limit:
            page = read_workspace_states(
                connection, org_id=parsed_org, after=after, limit=LIST_PAGE_SIZE
            )
            for state, name in page:
                decision = decide_from_state(context, state)
                if (
                    (wanted is None or decision.mode is wanted)
                    and (wanted_source is None or decision.source is wanted_source)
                    and (
                        wanted_provisioning is None
                        or decision.provisioning.status in wanted_provisioning
                    )
                ):
                    view = WorkspaceView(
                        id=state.workspace_id,
                        org_id=state.org_id,
                        name=name,
                        runtime=state.runtime or DEFAULT_RUNTIME,
                        model=state.model,
                        override=state.override,
                    )
                    found.append(WorkspaceWithDecision(view, decision))
                    if len(found) == limit:
                        break
            if len(page) < LIST_PAGE_SIZE:
                break
            after = page[-1][0].workspace_id
    return found
