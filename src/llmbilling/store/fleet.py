"""The whole fleet, read for what-if and registry diffs: a count, and every workspace's raw
row in keyset pages (``workspace_read.read_fleet_page``), so memory stays flat in fleet size."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import func, select

from llmbilling.store.engine import Store
from llmbilling.store.tables import workspaces
from llmbilling.store.workspace_read import as_uuid, read_fleet_page


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
