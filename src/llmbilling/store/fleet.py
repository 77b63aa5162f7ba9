"""The whole fleet, read for what-if and registry diffs: a count, every workspace's raw row in
keyset pages (``workspace_read.read_fleet_page``), and the what-if's grouped reads, which leave
the grouping and counting to the database so Python's work grows with distinct decision inputs,
not with workspaces.

The grouped reads (:func:`grouped_reads`; PostgreSQL, where they beat streaming) run in one
snapshot. Over one org, one statement groups its workspaces by their stored inputs, each group
with its count and its lowest ids (an org's groups are few). Over the fleet: the distinct stored
inputs, then per org how many workspaces fall in each *change* the caller assigned to those
inputs, then the lowest ids of a few (org, change) groups for samples. Last, either way, the
rows whose model sits in sealed ``MOLECULE_MODEL``/``MODEL`` secrets, row by row (only Python
can decrypt them). Over the fleet a stored input is keyed by one text column (``input_key``):
each part length-prefixed, so distinct inputs never share a key. On SQLite the caller streams
the rows in id order instead and groups them itself (``service/whatif.py`` ``decide_grouped``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Select,
    Text,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal_column,
    not_,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, aggregate_order_by

from llmbilling.store.engine import Store
from llmbilling.store.tables import (
    Timestamp,
    org_secrets,
    organizations,
    workspace_secrets,
    workspaces,
)
from llmbilling.store.workspace_read import (
    MODEL_SECRET_NAMES,
    PYTHON_WHITE_SPACE,
    as_uuid,
    read_fleet_page,
    stored_timestamp,
    workspace_states_page_statement,
)


def count_workspaces(store: Store, org_id: UUID | None = None) -> int:
    """How many workspaces are stored (of one org, if given): one statement.

    Raises ``StoreUnavailableError`` when the store fails.
    """
    statement = select(func.count()).select_from(workspaces)
    if org_id is not None:
        statement = statement.where(workspaces.c.org_id == org_id)
    with store.connection() as connection:
        return int(connection.execute(statement).scalar_one())


def fleet_rows(store: Store, org_id: UUID | None, page_size: int) -> Iterator[Sequence[Any]]:
    """Every stored workspace's raw row (of one org, if given) in id order, ``page_size`` rows
    per statement on one read connection, held while the caller iterates.

    The row's columns are ``workspace_read.fleet_page_statement``'s. Raises
    ``StoreUnavailableError`` (during iteration) when the store fails.
    """
    after: UUID | None = None
    with store.connection() as connection:
        while True:
            page = read_fleet_page(connection, org_id=org_id, after=after, limit=page_size)
            yield from page
            if len(page) < page_size:
                return
            after = as_uuid(page[-1][0])


@dataclass(frozen=True, slots=True)
class StoredInputs:
    """One distinct combination of stored decision inputs (of workspaces whose model is not
    sealed), decoded from the key the database grouped them by.

    ``expired_at`` is the override expiry when it has passed at the run's ``now`` (the lowest
    such expiry of the group: a passed expiry decides alike whatever its value), else None.
    Secret names arrive aggregated (``workspace_read.split_secret_names`` splits them).
    """

    override: str | None
    expired_at: datetime | None
    org_default: str | None
    runtime: str | None
    model: str | None
    workspace_secret_names: str | None
    org_secret_names: str | None


@dataclass(frozen=True, slots=True)
class InputGroup:
    """Workspaces of one org counted together: those whose key the caller mapped to change
    number ``change``, or (``change`` None) those of one key the caller's map did not hold,
    written since it was read; ``inputs`` then says what they store."""

    org_id: UUID
    change: int | None
    inputs: StoredInputs | None
    workspaces: int
    lowest_id: UUID
    unmapped_key: str | None = None

    @property
    def identity(self) -> tuple[UUID, int | None, str | None]:
        return (self.org_id, self.change, self.unmapped_key)


@dataclass(frozen=True, slots=True)
class OrgInputGroup:
    """The unsealed workspaces of the org in scope that store the same ``inputs``: how many,
    and the lowest of their ids (at most the limit asked for), in id order."""

    inputs: StoredInputs
    workspaces: int
    lowest_ids: tuple[UUID, ...]


class GroupedFleet:
    """The grouped reads of the what-if and the change preview over one connection (see the
    module docstring); made by :func:`grouped_reads`. Each method is one statement, or one
    statement per page for :meth:`rows`. The grouped statements are PostgreSQL's: over one org
    (:attr:`groups_one_org`) :meth:`org_groups`, over the fleet :meth:`distinct_inputs`,
    :meth:`groups` and :meth:`lowest_ids`; then :meth:`sealed_model_rows`. On SQLite
    (:attr:`streams_rows`) the caller groups :meth:`rows`."""

    def __init__(self, connection: Connection, org_id: UUID | None, now: datetime) -> None:
        self._connection = connection
        self._org_id = org_id
        self._now = now
        self._dialect = connection.dialect.name
        self._keys: dict[StoredInputs, str] = {}

    @property
    def now(self) -> datetime:
        """The moment expiry is judged against."""
        return self._now

    @property
    def streams_rows(self) -> bool:
        """Whether the caller should group :meth:`rows` itself instead of using the grouped
        statements: on SQLite, whose in-process scan streams rows faster than grouping
        statements ran there (a sort per statement, a JSON lookup per row; docs/DECISIONS.md)."""
        return self._dialect != "postgresql"

    @property
    def groups_one_org(self) -> bool:
        """Whether the caller should use :meth:`org_groups` (one org in scope, not streamed).
        One org's groups are bounded by its size, so one statement can return each with its
        lowest ids; the fleet's (org, inputs) groups can be millions, so there
        :meth:`distinct_inputs`, :meth:`groups` and :meth:`lowest_ids` fetch ids only for the
        groups that can hold samples."""
        return self._org_id is not None and not self.streams_rows

    @property
    def org_id(self) -> UUID | None:
        """The org in scope, None for the fleet."""
        return self._org_id

    def org_groups(self, sample_limit: int) -> Iterator[OrgInputGroup]:
        """The unsealed workspaces of the org in scope, grouped by stored inputs, each group
        with its ``sample_limit`` lowest ids; one statement."""
        with_ids = sample_limit > 0
        statement = _org_groups_statement(with_ids)
        parameters = self._parameters()
        if with_ids:
            parameters["sample_limit"] = sample_limit
        for row in self._connection.execute(statement, parameters):
            override, passed, org_default, runtime, model, workspace_names, org_names = row[:7]
            count, expired_at = row[7], row[8]
            yield OrgInputGroup(
                inputs=StoredInputs(
                    override=override,
                    expired_at=stored_timestamp(expired_at) if passed else None,
                    org_default=org_default,
                    runtime=runtime,
                    model=model,
                    workspace_secret_names=workspace_names,
                    org_secret_names=org_names,
                ),
                workspaces=int(count),
                lowest_ids=tuple(as_uuid(raw) for raw in row[9]) if with_ids else (),
            )

    def rows(self, page_size: int) -> Iterator[Sequence[Any]]:
        """Every workspace's raw row of the scope in id order, ``page_size`` rows per
        statement (``workspace_read.fleet_page_statement``'s columns)."""
        after: UUID | None = None
        while True:
            page = read_fleet_page(
                self._connection, org_id=self._org_id, after=after, limit=page_size
            )
            yield from page
            if len(page) < page_size:
                return
            after = as_uuid(page[-1][0])

    def distinct_inputs(self) -> list[StoredInputs]:
        """Every distinct stored input of the fleet's unsealed workspaces (no org in scope)."""
        statement = _distinct_inputs_statement()
        found: list[StoredInputs] = []
        for key, expired_at in self._connection.execute(statement, self._parameters()):
            inputs = _decode(key, stored_timestamp(expired_at))
            self._keys[inputs] = key
            found.append(inputs)
        return found

    def groups(self, change_of: Mapping[StoredInputs, int]) -> Iterator[InputGroup]:
        """Every unsealed workspace counted once, per org and change number (``change_of``
        maps inputs of :meth:`distinct_inputs` to the caller's change numbers), in org order."""
        statement = _groups_statement()
        parameters = self._parameters() | {"change_of_key": self._change_map(change_of)}
        for org_id, change, key, count, lowest_id, expired_at in self._connection.execute(
            statement, parameters
        ):
            yield InputGroup(
                org_id=as_uuid(org_id),
                change=None if change is None else int(change),
                inputs=None if key is None else _decode(key, stored_timestamp(expired_at)),
                workspaces=int(count),
                lowest_id=as_uuid(lowest_id),
                unmapped_key=key,
            )

    def lowest_ids(
        self, change_of: Mapping[StoredInputs, int], groups: Iterable[InputGroup], limit: int
    ) -> list[tuple[UUID, InputGroup]]:
        """(id, group) of the ``limit`` lowest-id workspaces of each of ``groups`` (of
        :meth:`groups` with the same ``change_of``), in id order."""
        wanted = {group.identity: group for group in groups}
        if not wanted or limit <= 0:
            return []
        statement = _lowest_ids_statement()
        parameters = {
            "now": self._now,
            "change_of_key": self._change_map(change_of),
            "org_ids": sorted({identity[0] for identity in wanted}),
            "sample_limit": limit,
        }
        found: list[tuple[UUID, InputGroup]] = []
        for workspace_id, org_id, change, key in self._connection.execute(statement, parameters):
            group = wanted.get((as_uuid(org_id), None if change is None else int(change), key))
            if group is not None:
                found.append((as_uuid(workspace_id), group))
        return sorted(found, key=lambda pair: pair[0])

    def sealed_model_rows(self, batch_size: int) -> Iterator[Sequence[Any]]:
        """The workspaces whose effective model sits in sealed model secrets (no model of
        their own, a ``MOLECULE_MODEL``/``MODEL`` secret in either scope), in no particular
        order, ``batch_size`` rows fetched at a time: rows with
        ``workspace_read.workspace_states_page_statement``'s columns."""
        statement = _sealed_rows_statement(self._org_id is not None)
        parameters: dict[str, object] = {}
        if self._org_id is not None:
            parameters["org_id"] = self._org_id
        yield from self._connection.execute(
            statement, parameters, execution_options={"yield_per": batch_size}
        )

    def _change_map(self, change_of: Mapping[StoredInputs, int]) -> str:
        return json.dumps({self._keys[inputs]: change for inputs, change in change_of.items()})

    def _parameters(self) -> dict[str, object]:
        parameters: dict[str, object] = {"now": self._now}
        if self._org_id is not None:
            parameters["org_id"] = self._org_id
        return parameters


@contextmanager
def grouped_fleet(store: Store, org_id: UUID | None, now: datetime) -> Iterator[GroupedFleet]:
    """The grouped reads of the fleet (of one org, if given) on one read connection of
    ``store``, as :func:`grouped_reads` makes them. Raises ``StoreUnavailableError`` (inside
    the block) when the store fails."""
    with store.connection() as connection, grouped_reads(connection, org_id, now) as grouped:
        yield grouped


@contextmanager
def grouped_reads(
    connection: Connection, org_id: UUID | None, now: datetime
) -> Iterator[GroupedFleet]:
    """The grouped reads of the fleet (of one org, if given) on ``connection``; expiry is
    judged against ``now``.

    On PostgreSQL the reads share one snapshot: on an autocommit read connection they open
    and end their own ``REPEATABLE READ READ ONLY`` transaction; inside a caller's
    transaction (a write checking what it would do) they run in a savepoint, so their
    planner settings end with them. On SQLite the caller streams :meth:`GroupedFleet.rows`,
    each page its own snapshot on an autocommit connection (a held read transaction would hide
    a store failure behind its snapshot).
    """
    if connection.dialect.name != "postgresql":
        yield GroupedFleet(connection, org_id, now)
        return
    # The driver knows (the server reports the level it would use, autocommit or not).
    autocommit = bool(getattr(connection.connection.dbapi_connection, "autocommit", False))
    if autocommit:
        # The read connection is autocommit (a read is its one statement): these reads need
        # one snapshot, so they open and end their own read-only transaction.
        connection.exec_driver_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    else:
        connection.exec_driver_sql("SAVEPOINT grouped_reads")
    # These statements cost much by the planner's estimate (a subquery per row), which
    # would make PostgreSQL JIT-compile them: seconds of compiling for a scan that does
    # not need it.
    connection.exec_driver_sql("SET LOCAL jit = off")
    # Room to hash the per-key groups and the secret-name joins instead of sorting on disk.
    connection.exec_driver_sql("SET LOCAL work_mem = '64MB'")
    if org_id is None:
        # Every row is read: hash joins over one sequential scan. Left to itself the
        # planner walks the id index for a merge join with the aggregated secret names
        # and probes the orgs row by row, fetching the table in random order (3x slower
        # at a million workspaces).
        connection.exec_driver_sql("SET LOCAL enable_mergejoin = off")
        connection.exec_driver_sql("SET LOCAL enable_nestloop = off")
    try:
        yield GroupedFleet(connection, org_id, now)
    finally:
        # Rolling back to the savepoint also undoes its SET LOCALs; the reads wrote nothing.
        connection.exec_driver_sql(
            "ROLLBACK" if autocommit else "ROLLBACK TO SAVEPOINT grouped_reads"
        )


def _decode(key: str, expired_at: datetime | None) -> StoredInputs:
    """The parts of an ``input_key`` (see :func:`_key_part`)."""
    parts: list[str | None] = []
    position = 0
    while position < len(key):
        if key[position] == _NULL_PART:
            parts.append(None)
            position += 1
            continue
        colon = key.index(":", position)
        length = int(key[position:colon])
        parts.append(key[colon + 1 : colon + 1 + length])
        position = colon + 1 + length
    override, passed, org_default, runtime, model, workspace_names, org_names = parts
    return StoredInputs(
        override=override,
        expired_at=expired_at if passed == "1" else None,
        org_default=org_default,
        runtime=runtime,
        model=model,
        workspace_secret_names=workspace_names,
        org_secret_names=org_names,
    )


# --- the statements ------------------------------------------------------------------------------

_FROM = workspaces.join(organizations, organizations.c.id == workspaces.c.org_id)
_SEPARATOR = literal_column("','", Text)
_NULL_PART = "~"


def _is_sealed_model_row() -> ColumnElement[bool]:
    """No model of its own (blank as Python's ``str.strip()`` sees it, as the read path
    judges) and a model secret in either scope: the read path decrypts its model."""
    blank = literal_column("''", Text)
    white_space = literal_column(f"'{PYTHON_WHITE_SPACE}'", Text)
    model_is_blank = func.coalesce(func.btrim(workspaces.c.model, white_space), blank) == blank
    names = [literal_column(f"'{name}'", Text) for name in MODEL_SECRET_NAMES]
    return and_(
        model_is_blank,
        or_(
            exists().where(
                workspace_secrets.c.workspace_id == workspaces.c.id,
                workspace_secrets.c.key.in_(names),
            ),
            exists().where(
                org_secrets.c.org_id == workspaces.c.org_id, org_secrets.c.key.in_(names)
            ),
        ),
    )


def _expiry_passed() -> ColumnElement[bool]:
    # As override_expired_at: passed when now is not before it.
    return and_(
        workspaces.c.override_expires_at.is_not(None),
        workspaces.c.override_expires_at <= bindparam("now", type_=Timestamp),
    )


def _key_part(value: ColumnElement[Any]) -> ColumnElement[str]:
    """'~' for NULL, else the length, ':' and the text: parts joined so never run together.
    ``value`` appears once: a subquery named twice would run twice per row."""
    prefixed = cast(func.length(value), Text) + literal_column("':'", Text) + value
    return func.coalesce(prefixed, literal_column(f"'{_NULL_PART}'", Text))


def _keyed(orgs: _Orgs) -> Any:
    """(org id, id, input key, passed expiry) of every unsealed workspace (of ``orgs``).

    The input key is one text of the stored decision inputs: override, expiry passed (0 or 1),
    org default, runtime, model, its and its org's secret names. The names are aggregated per
    owner once and joined (a hash join over the fleet, not a subquery per row).
    """
    workspace_names = _names_by_owner(workspace_secrets.c.workspace_id, orgs)
    org_names = _names_by_owner(org_secrets.c.org_id, orgs)
    passed = case(
        (_expiry_passed(), literal_column("'1:1'", Text)), else_=literal_column("'1:0'", Text)
    )
    parts = [
        _key_part(workspaces.c.llm_billing_mode),
        passed,
        _key_part(organizations.c.llm_billing_mode_default),
        _key_part(workspaces.c.runtime),
        _key_part(workspaces.c.model),
        _key_part(workspace_names.c.names),
        _key_part(org_names.c.names),
    ]
    key = parts[0]
    for part in parts[1:]:
        key = key + part
    statement = (
        select(
            workspaces.c.org_id.label("org_id"),
            workspaces.c.id.label("id"),
            key.label("input_key"),
            case((_expiry_passed(), workspaces.c.override_expires_at)).label("expired_at"),
        )
        .select_from(
            _FROM.outerjoin(workspace_names, workspace_names.c.owner == workspaces.c.id).outerjoin(
                org_names, org_names.c.owner == workspaces.c.org_id
            )
        )
        .where(not_(_is_sealed_model_row()))
    )
    if orgs != "all":
        statement = statement.where(_of_orgs(workspaces.c.org_id, orgs))
    return statement.subquery("keyed")


# Which orgs' workspaces a statement reads: all, ``:org_id``'s, or those of ``:org_ids``.
_Orgs = Literal["all", "one", "listed"]


def _of_orgs(org_id: ColumnElement[Any], orgs: _Orgs) -> ColumnElement[bool]:
    if orgs == "one":
        return org_id == bindparam("org_id", type_=workspaces.c.org_id.type)
    return org_id.in_(bindparam("org_ids", expanding=True, type_=workspaces.c.org_id.type))


def _names_by_owner(owner: ColumnElement[Any], orgs: _Orgs) -> Any:
    """(owner, its secret names aggregated in name order) per owner of ``owner``'s table, of
    ``orgs`` only."""
    table = owner.table
    names = func.string_agg(table.c.key, aggregate_order_by(_SEPARATOR, table.c.key))
    statement = select(owner.label("owner"), names.label("names")).group_by(owner)
    if orgs != "all" and owner is org_secrets.c.org_id:
        statement = statement.where(_of_orgs(owner, orgs))
    elif orgs != "all":
        statement = statement.where(
            owner.in_(select(workspaces.c.id).where(_of_orgs(workspaces.c.org_id, orgs)))
        )
    return statement.subquery()


@cache
def _org_groups_statement(with_ids: bool) -> Select[Any]:
    """The org's unsealed workspaces grouped by their stored inputs (the columns, not a key:
    the planner can hash a few groups), each group's count, lowest passed expiry and, with
    ``with_ids``, its ``:sample_limit`` lowest ids."""
    workspace_names = _names_by_owner(workspace_secrets.c.workspace_id, "one")
    org_names = _names_by_owner(org_secrets.c.org_id, "one")
    inputs = (
        workspaces.c.llm_billing_mode,
        _expiry_passed(),
        organizations.c.llm_billing_mode_default,
        workspaces.c.runtime,
        workspaces.c.model,
        workspace_names.c.names,
        org_names.c.names,
    )
    columns: list[ColumnElement[Any]] = [
        *inputs,
        func.count(),
        func.min(case((_expiry_passed(), workspaces.c.override_expires_at))),
    ]
    if with_ids:
        ids = func.array_agg(
            aggregate_order_by(workspaces.c.id, workspaces.c.id),
            type_=ARRAY(workspaces.c.id.type),
        )
        columns.append(ids[1 : bindparam("sample_limit", type_=Integer)])
    return (
        select(*columns)
        .select_from(
            _FROM.outerjoin(workspace_names, workspace_names.c.owner == workspaces.c.id).outerjoin(
                org_names, org_names.c.owner == workspaces.c.org_id
            )
        )
        .where(_of_orgs(workspaces.c.org_id, "one"), not_(_is_sealed_model_row()))
        .group_by(*inputs)
    )


@cache
def _distinct_inputs_statement() -> Select[Any]:
    keyed = _keyed("all")
    return select(keyed.c.input_key, func.min(keyed.c.expired_at)).group_by(keyed.c.input_key)


def _with_changes(keyed: Any) -> Any:
    """``keyed`` with the caller's change number of its key (the JSON object bound as
    ``:change_of_key``, read as rows by ``jsonb_each_text`` and hashed for the join), and the
    key itself only where the map lacks it."""
    source = func.jsonb_each_text(cast(bindparam("change_of_key", type_=Text), JSONB))
    changes = source.table_valued("key", "value").alias("change_of_key")
    change = cast(changes.c.value, Integer)
    return (
        select(
            keyed.c.org_id,
            keyed.c.id,
            keyed.c.expired_at,
            change.label("change"),
            case((changes.c.value.is_(None), keyed.c.input_key)).label("unmapped_key"),
        )
        .select_from(keyed.outerjoin(changes, changes.c.key == keyed.c.input_key))
        .subquery("changed")
    )


def _id_order(column: ColumnElement[Any]) -> ColumnElement[Any]:
    # PostgreSQL has no min(uuid); the canonical text in byte order ("C") orders as the uuid.
    return cast(column, Text).collate("C")


@cache
def _groups_statement() -> Select[Any]:
    changed = _with_changes(_keyed("all"))
    return (
        select(
            changed.c.org_id,
            changed.c.change,
            changed.c.unmapped_key,
            func.count(),
            func.min(_id_order(changed.c.id)),
            func.min(changed.c.expired_at),
        )
        .group_by(changed.c.org_id, changed.c.change, changed.c.unmapped_key)
        .order_by(changed.c.org_id)
    )


@cache
def _lowest_ids_statement() -> Select[Any]:
    changed = _with_changes(_keyed("listed"))
    group = (changed.c.org_id, changed.c.change, changed.c.unmapped_key)
    ranked = select(
        changed.c.id,
        *group,
        func.row_number().over(partition_by=group, order_by=changed.c.id).label("rank"),
    ).subquery("ranked")
    return select(ranked.c.id, ranked.c.org_id, ranked.c.change, ranked.c.unmapped_key).where(
        ranked.c.rank <= bindparam("sample_limit", type_=Integer)
    )


@cache
def _sealed_rows_statement(by_org: bool) -> Select[Any]:
    # One statement in no order: paging in id order would walk the id index and fetch rows
    # all over the table; unordered, the database scans it once.
    return (
        workspace_states_page_statement("postgresql", by_org, False)
        .order_by(None)
        .limit(None)
        .where(_is_sealed_model_row())
    )
