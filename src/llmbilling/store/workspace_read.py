"""Everything a decision needs about one workspace, in exactly one SQL statement.

One SELECT joins the workspace to its org and aggregates, in correlated subqueries served by the
secrets' primary keys, the secret *names* of both scopes. Only when the workspace stores no
model does it also return the sealed ``MOLECULE_MODEL`` / ``MODEL`` values (model names are not
credentials; the caller decrypts just those), so the read path takes the same effective model
as provisioning. The statement is compiled once per dialect and reused as SQL text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    FromClause,
    Integer,
    Select,
    Text,
    TextualSelect,
    Uuid,
    bindparam,
    case,
    cast,
    column,
    func,
    literal_column,
    or_,
    select,
    text,
)

from llmbilling.core.provisioning import MODEL_ENV, MOLECULE_MODEL_ENV
from llmbilling.store.audit import as_utc
from llmbilling.store.crypto import EncryptedValue, SecretScopeName
from llmbilling.store.engine import named_parameter_dialect
from llmbilling.store.loop_reader import LoopReader
from llmbilling.store.tables import org_secrets, organizations, workspace_secrets, workspaces

MODEL_SECRET_NAMES = (MOLECULE_MODEL_ENV, MODEL_ENV)  # precedence order
_LIST_SEPARATOR = ","
# Every character str.isspace() accepts, which str.strip() removes (none of them is a quote).
PYTHON_WHITE_SPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# Packs one sealed model value as NAME:VERSION:FINGERPRINT:BASE64, the fingerprint empty when
# unrecorded (neither ':' nor ',' occurs in an env name, a number, hex or base64).
_FIELD_SEPARATOR = ":"


@dataclass(frozen=True, slots=True)
class SealedSecret:
    scope: SecretScopeName
    name: str
    value: EncryptedValue


@dataclass(frozen=True, slots=True)
class WorkspaceState:
    """The stored inputs of one workspace's decision, as read (garbled text included).

    ``model_secrets`` is empty unless ``model`` is blank; it holds the sealed model-name
    secrets of both scopes, for the effective-model rule of spec §4. ``workspace_version`` and
    ``org_version`` are the two rows' ``row_version`` in the same snapshot.
    """

    workspace_id: UUID
    org_id: UUID
    override: str | None
    runtime: str | None
    model: str | None
    org_default: str | None
    workspace_secret_names: frozenset[str]
    org_secret_names: frozenset[str]
    model_secrets: tuple[SealedSecret, ...]
    workspace_version: int
    org_version: int
    override_expires_at: datetime | None = None
    """When the override stops deciding (UTC), None when it does not expire."""

    @property
    def secret_names(self) -> frozenset[str]:
        """Names present for the workspace: its own and its org's (values never read)."""
        return self.workspace_secret_names | self.org_secret_names


def _aggregate(dialect: str, expression: ColumnElement[str]) -> ColumnElement[str]:
    if dialect == "postgresql":
        return func.string_agg(expression, literal_column(f"'{_LIST_SEPARATOR}'"))
    return func.group_concat(expression, literal_column(f"'{_LIST_SEPARATOR}'"))


def _is_model_secret(table: FromClause) -> ColumnElement[bool]:
    # Literal constants, not bound IN-lists: the statement compiles to one fixed string.
    return or_(*(table.c.key == literal_column(f"'{name}'") for name in MODEL_SECRET_NAMES))


def _packed_model_secret(table: FromClause) -> ColumnElement[str]:
    separator = literal_column(f"'{_FIELD_SEPARATOR}'", Text)
    fingerprint = func.coalesce(table.c.key_fingerprint, literal_column("''", Text))
    return (
        table.c.key
        + separator
        + cast(table.c.key_version, Text)
        + separator
        + fingerprint
        + separator
        + table.c.ciphertext
    )


def _state_columns(dialect: str) -> list[ColumnElement[Any]]:
    w = workspaces
    ws_names = workspace_secrets.alias("ws_names")
    org_names = org_secrets.alias("org_names")
    ws_models = workspace_secrets.alias("ws_models")
    org_models = org_secrets.alias("org_models")
    blank: ColumnElement[str] = literal_column("''", Text)
    # Blank as provisioning's effective model sees it (Python's str.strip()): SQL's one-argument
    # trim removes spaces only, so a model of "\t" would skip the model secrets here while the
    # provision path falls through to them, and the two would decide differently.
    white_space = literal_column(f"'{PYTHON_WHITE_SPACE}'", Text)
    trim = func.btrim if dialect == "postgresql" else func.trim
    model_is_blank = func.coalesce(trim(w.c.model, white_space), blank) == blank
    return [
        w.c.org_id,
        w.c.llm_billing_mode,
        w.c.runtime,
        w.c.model,
        organizations.c.llm_billing_mode_default,
        w.c.row_version,
        organizations.c.row_version,
        select(_aggregate(dialect, ws_names.c.key))
        .where(ws_names.c.workspace_id == w.c.id)
        .scalar_subquery(),
        select(_aggregate(dialect, org_names.c.key))
        .where(org_names.c.org_id == w.c.org_id)
        .scalar_subquery(),
        # CASE short-circuits on both engines: the model secrets are looked up only when the
        # workspace row has no model of its own.
        case(
            (
                model_is_blank,
                select(_aggregate(dialect, _packed_model_secret(ws_models)))
                .where(ws_models.c.workspace_id == w.c.id, _is_model_secret(ws_models))
                .scalar_subquery(),
            )
        ),
        case(
            (
                model_is_blank,
                select(_aggregate(dialect, _packed_model_secret(org_models)))
                .where(org_models.c.org_id == w.c.org_id, _is_model_secret(org_models))
                .scalar_subquery(),
            )
        ),
        w.c.override_expires_at,
    ]


_FROM = workspaces.join(organizations, organizations.c.id == workspaces.c.org_id)


@cache
def workspace_state_statement(dialect: str) -> TextualSelect:
    """The one statement of the read path, for ``dialect`` (``sqlite`` or ``postgresql``).

    Built with Core once, then frozen into SQL text: executing a large Core statement makes
    SQLAlchemy walk it for a cache key on every call, while text is keyed by its string.
    """
    statement = (
        select(*_state_columns(dialect))
        .select_from(_FROM)
        .where(workspaces.c.id == bindparam("workspace_id", type_=workspaces.c.id.type))
    )
    sql = str(statement.compile(dialect=named_parameter_dialect(dialect)))
    return (
        text(sql)
        .bindparams(bindparam("workspace_id", type_=Uuid()))
        .columns(column("org_id", Uuid()))
    )


@cache
def workspace_states_page_statement(dialect: str, by_org: bool, after: bool) -> Select[Any]:
    """A page of (id, state columns, name) in id order, optionally of one org and after an id."""
    return _in_id_order(
        select(workspaces.c.id, *_state_columns(dialect), workspaces.c.name), by_org, after
    ).limit(bindparam("page_size", type_=Integer))


def _in_id_order(statement: Select[Any], by_org: bool, after: bool) -> Select[Any]:
    """``statement`` over the workspaces joined to their orgs, in id order, optionally of one
    org (``:org_id``) and after an id (``:after_id``)."""
    statement = statement.select_from(_FROM).order_by(workspaces.c.id)
    if by_org:
        statement = statement.where(
            workspaces.c.org_id == bindparam("org_id", type_=workspaces.c.org_id.type)
        )
    if after:
        statement = statement.where(
            workspaces.c.id > bindparam("after_id", type_=workspaces.c.id.type)
        )
    return statement


@cache
def fleet_page_statement(dialect: str, by_org: bool, after: bool) -> TextualSelect:
    """:func:`workspace_states_page_statement` without the name, frozen into SQL text whose
    results are the driver's raw values: a fleet scan skips SQLAlchemy's per-row conversions
    (ids stay as the driver returns them: hex text on SQLite, ``UUID`` on PostgreSQL)."""
    statement = _in_id_order(select(workspaces.c.id, *_state_columns(dialect)), by_org, after)
    # LIMIT is appended as text: SQLite's compiler would pair a bound LIMIT with an OFFSET.
    sql = str(statement.compile(dialect=named_parameter_dialect(dialect))) + " LIMIT :page_size"
    parameters: list[BindParameter[Any]] = [bindparam("page_size", type_=Integer())]
    if by_org:
        parameters.append(bindparam("org_id", type_=Uuid()))
    if after:
        parameters.append(bindparam("after_id", type_=Uuid()))
    return text(sql).bindparams(*parameters).columns()


def read_fleet_page(
    connection: Connection, *, org_id: UUID | None, after: UUID | None, limit: int
) -> Sequence[Sequence[Any]]:
    """One page of raw fleet rows in id order: (id, then the state columns). Decode a row with
    :func:`unpack_model_secrets` and :func:`split_secret_names` for its aggregated columns."""
    statement = fleet_page_statement(connection.dialect.name, org_id is not None, after is not None)
    parameters: dict[str, object] = {"page_size": limit}
    if org_id is not None:
        parameters["org_id"] = org_id
    if after is not None:
        parameters["after_id"] = after
    return connection.execute(statement, parameters).all()


def as_uuid(raw: object) -> UUID:
    """A raw id from :func:`read_fleet_page` (UUID, or hex text on SQLite) as a UUID."""
    return raw if isinstance(raw, UUID) else UUID(str(raw))


def unpack_model_secrets(
    workspace_models: str | None, org_models: str | None
) -> tuple[SealedSecret, ...]:
    """The sealed model-name secrets of a row's two aggregated model columns."""
    return _unpack("workspace", workspace_models) + _unpack("org", org_models)


def read_workspace_state(connection: Connection, workspace_id: UUID) -> WorkspaceState | None:
    """Run the one statement; None when no such workspace exists. Database errors propagate."""
    statement = workspace_state_statement(connection.dialect.name)
    row = connection.execute(statement, {"workspace_id": workspace_id}).first()
    return None if row is None else _state(workspace_id, row)


async def read_workspace_state_on_loop(
    reader: LoopReader, workspace_id: UUID
) -> WorkspaceState | None:
    """:func:`read_workspace_state` for a coroutine, through ``reader``."""
    statement = workspace_state_statement(reader.dialect)
    row = await reader.first(statement, {"workspace_id": workspace_id})
    return None if row is None else _state(workspace_id, row)


def read_workspace_states(
    connection: Connection, *, org_id: UUID | None, after: UUID | None, limit: int
) -> list[tuple[WorkspaceState, str | None]]:
    """One page of (state, workspace name), in id order."""
    statement = workspace_states_page_statement(
        connection.dialect.name, org_id is not None, after is not None
    )
    parameters: dict[str, object] = {"page_size": limit}
    if org_id is not None:
        parameters["org_id"] = org_id
    if after is not None:
        parameters["after_id"] = after
    return [
        (_state(row[0], row[1:-1]), row[-1]) for row in connection.execute(statement, parameters)
    ]


def _state(workspace_id: UUID, row: Sequence[Any]) -> WorkspaceState:
    (
        org_id,
        override,
        runtime,
        model,
        org_default,
        workspace_version,
        org_version,
        ws_names,
        org_names,
        ws_models,
        org_models,
        expires_at,
    ) = row
    return WorkspaceState(
        workspace_id=workspace_id,
        org_id=as_uuid(org_id),
        override=override,
        runtime=runtime,
        model=model,
        org_default=org_default,
        workspace_secret_names=split_secret_names(ws_names),
        org_secret_names=split_secret_names(org_names),
        model_secrets=unpack_model_secrets(ws_models, org_models),
        workspace_version=workspace_version,
        org_version=org_version,
        override_expires_at=stored_timestamp(expires_at),
    )


def stored_timestamp(raw: object) -> datetime | None:
    """A raw timestamp column of the read statements, in UTC (SQLite's arrive as ISO text)."""
    if raw is None:
        return None
    moment = raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw))
    return as_utc(moment)


def split_secret_names(aggregated: str | None) -> frozenset[str]:
    """The secret names of one aggregated column of the read statements."""
    return frozenset(aggregated.split(_LIST_SEPARATOR)) if aggregated else frozenset()


def _unpack(scope: SecretScopeName, aggregated: str | None) -> tuple[SealedSecret, ...]:
    if not aggregated:
        return ()
    sealed: list[SealedSecret] = []
    for packed in aggregated.split(_LIST_SEPARATOR):
        name, version, fingerprint, ciphertext = packed.split(_FIELD_SEPARATOR, 3)
        sealed.append(
            SealedSecret(scope, name, EncryptedValue(ciphertext, int(version), fingerprint or None))
        )
    return tuple(sealed)
