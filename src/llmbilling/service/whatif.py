"""Fleet what-if over the store: stream every workspace, decide it under the current and a
proposed configuration, tally. Memory stays flat in fleet size: rows arrive in keyset pages and
only counts and bounded samples are kept."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from llmbilling.core.policy import CompiledPolicy
from llmbilling.core.registry import CompiledRegistry
from llmbilling.core.whatif import Configuration, WhatIfReport, WhatIfTally, compare
from llmbilling.service.context import ServiceContext, parse_id
from llmbilling.service.resolve import read_path_inputs
from llmbilling.store.engine import describe_database_error
from llmbilling.store.errors import StoreUnavailableError
from llmbilling.store.tables import workspaces
from llmbilling.store.workspace_read import WorkspaceState, read_workspace_states

WHATIF_PAGE_SIZE = 5000


def current_configuration(context: ServiceContext) -> Configuration:
    """What decides today: the deployment's policy and registry."""
    return Configuration(context.policy, context.registry)


def proposed_configuration(
    context: ServiceContext,
    policy: CompiledPolicy | None,
    registry: CompiledRegistry | None,
) -> Configuration:
    """The proposal; what it leaves out stays as it is today."""
    return Configuration(
        policy if policy is not None else context.policy,
        registry if registry is not None else context.registry,
    )


def count_workspaces(context: ServiceContext, org_id: str | UUID | None = None) -> int:
    statement = select(func.count()).select_from(workspaces)
    if org_id is not None:
        statement = statement.where(workspaces.c.org_id == parse_id("org_id", org_id))
    try:
        with context.store.read_engine.connect() as connection:
            return int(connection.execute(statement).scalar_one())
    except SQLAlchemyError as error:
        raise StoreUnavailableError(describe_database_error(error, context.store.url)) from None


def stream_workspace_states(
    context: ServiceContext, org_id: UUID | None = None, page_size: int = WHATIF_PAGE_SIZE
) -> Iterator[WorkspaceState]:
    """Every stored workspace (of one org, if given) in id order, one keyset page at a time."""
    after: UUID | None = None
    try:
        with context.store.read_engine.connect() as connection:
            while True:
                page = read_workspace_states(
                    connection, org_id=org_id, after=after, limit=page_size
                )
                for state, _name in page:
                    yield state
                if len(page) < page_size:
                    return
                after = page[-1][0].workspace_id
    except SQLAlchemyError as error:
        raise StoreUnavailableError(describe_database_error(error, context.store.url)) from None


def run_whatif(
    context: ServiceContext,
    proposed: Configuration,
    *,
    org_id: str | UUID | None = None,
    samples_per_class: int = 20,
    on_progress: Callable[[int], None] | None = None,
    progress_every: int = 10_000,
    page_size: int = WHATIF_PAGE_SIZE,
) -> WhatIfReport:
    """Decide every workspace under the current configuration and ``proposed``; tally.

    ``on_progress`` is called with the number of workspaces done, every ``progress_every``
    rows and at the end. Raises :class:`StoreUnavailableError` when the store fails.
    """
    parsed_org = None if org_id is None else parse_id("org_id", org_id)
    current = current_configuration(context)
    tally = WhatIfTally(current, proposed, samples_per_class=samples_per_class)
    for state in stream_workspace_states(context, parsed_org, page_size):
        inputs = read_path_inputs(context, state)
        tally.add(str(state.org_id), str(state.workspace_id), compare(inputs, current, proposed))
        if on_progress is not None and tally.total % progress_every == 0:
            on_progress(tally.total)
    if on_progress is not None:
        on_progress(tally.total)
    return tally.report()
