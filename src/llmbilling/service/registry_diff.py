"""The stored fleet grouped by what a registry derives from: (runtime, effective model,
credential names), with the number of workspaces in each group.

Rows are streamed as the fleet what-if streams them (:func:`stream_fleet_rows`, keyset pages)
and each becomes the read path's :class:`ResolutionInput` (same effective model, same secret
names); only the group counts are kept, so memory grows with the fleet's variety, not its size.
The comparison itself is pure: :func:`llmbilling.core.registry_diff.diff_fleet`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from uuid import UUID

from llmbilling.core.decision import OverrideReadFailure, ResolutionInput
from llmbilling.core.registry import CompiledRegistry
from llmbilling.core.registry_diff import FleetKey
from llmbilling.errors import LlmBillingError
from llmbilling.service.context import ServiceContext, parse_id
from llmbilling.service.resolve import decision_time, stored_inputs, unreadable_inputs
from llmbilling.service.whatif import (
    MEMO_LIMIT,
    WHATIF_PAGE_SIZE,
    sealed_row_model,
    stream_fleet_rows,
)
from llmbilling.store.workspace_read import as_uuid, split_secret_names, stored_timestamp


@dataclass(frozen=True, slots=True)
class FleetGroups:
    """``groups``: workspaces per (runtime, effective model, credential names); ``unreadable``:
    workspaces whose model secret could not be decrypted (in no group)."""

    groups: Counter[FleetKey]
    unreadable: int

    @property
    def workspaces(self) -> int:
        return sum(self.groups.values())


def fleet_inputs(
    context: ServiceContext,
    *,
    org_id: str | UUID | None = None,
    page_size: int = WHATIF_PAGE_SIZE,
) -> Iterator[ResolutionInput]:
    """Every stored workspace's decision inputs, as the read path builds them, in id order.

    A workspace whose sealed model secret cannot be decrypted yields the read path's
    unreadable inputs (an :class:`OverrideReadFailure` override). Secret names are split once
    per distinct aggregated list (bounded memo). Raises ``StoreUnavailableError``.
    """
    parsed_org = None if org_id is None else parse_id("org_id", org_id)
    names: dict[str | None, frozenset[str]] = {}

    def split(aggregated: str | None) -> frozenset[str]:
        found = names.get(aggregated)
        if found is None:
            if len(names) >= MEMO_LIMIT:
                names.clear()
            found = names[aggregated] = split_secret_names(aggregated)
        return found

    now = decision_time()
    for row in stream_fleet_rows(context, parsed_org, page_size):
        workspace_id, _, override, runtime, _, org_default = row[:6]
        workspace_names, org_names = row[8:10]
        try:
            effective = sealed_row_model(context, row)
        except LlmBillingError as error:
            yield unreadable_inputs(
                context, as_uuid(workspace_id), f"{error.code}: {error.message}"
            )
            continue
        yield stored_inputs(
            context,
            workspace_id=str(as_uuid(workspace_id)),
            override=override,
            org_default=org_default,
            runtime=runtime,
            model=effective,
            auth_env=split(workspace_names) | split(org_names),
            override_expires_at=stored_timestamp(row[12]),
            now=now,
        )


def group_inputs(
    inputs: Iterable[ResolutionInput], registries: Iterable[CompiledRegistry]
) -> FleetGroups:
    """Count ``inputs`` per (runtime, model, credential names), keeping of the secret names
    only those that are credentials in one of ``registries`` (no other name can change a
    derivation, so other secrets must not split a group). Pure."""
    credentials = frozenset().union(*(registry.all_auth_env for registry in registries))
    groups: Counter[FleetKey] = Counter()
    unreadable = 0
    for found in inputs:
        if isinstance(found.override, OverrideReadFailure):
            unreadable += 1
        else:
            groups[found.runtime, found.model, found.auth_env & credentials] += 1
    return FleetGroups(groups, unreadable)


def fleet_groups(
    context: ServiceContext,
    registries: Iterable[CompiledRegistry],
    *,
    org_id: str | UUID | None = None,
    page_size: int = WHATIF_PAGE_SIZE,
) -> FleetGroups:
    """The stored fleet (of one org, if given) grouped for a registry comparison."""
    return group_inputs(fleet_inputs(context, org_id=org_id, page_size=page_size), registries)
