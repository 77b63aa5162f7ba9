"""Fleet what-if over the store: decide every workspace under the current and a proposed
configuration, tally. The database groups the fleet by stored decision inputs and counts it per
org (``store/fleet.py`` ``grouped_fleet``), so Python's work grows with distinct inputs and orgs,
not with workspaces; only rows whose model sits in sealed secrets come one by one, to be
decrypted. Memory stays flat in fleet size: only counts, bounded samples and a bounded memo are
kept.

Distinct inputs that decide alike share one comparison: the memo key holds the model only as
its derivation under each registry (most models derive alike), and the credential names only as
the registry credentials among them.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Iterator, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from llmbilling.core.derivation import derivation_key
from llmbilling.core.policy import CompiledPolicy
from llmbilling.core.provisioning import effective_model
from llmbilling.core.registry import CompiledRegistry
from llmbilling.core.resolve import override_expired_at, relevant_auth_env
from llmbilling.core.whatif import Change, Configuration, WhatIfReport, WhatIfTally, compare
from llmbilling.errors import LlmBillingError
from llmbilling.service.context import ServiceContext, parse_id
from llmbilling.service.resolve import (
    decision_time,
    stored_inputs,
    stored_model,
    unreadable_inputs,
)
from llmbilling.store import fleet
from llmbilling.store.workspace_read import (
    as_uuid,
    split_secret_names,
    stored_timestamp,
    unpack_model_secrets,
)

WHATIF_PAGE_SIZE = 5000
# Distinct stored-input combinations remembered at once; the memo is dropped when full, which
# bounds memory whatever the fleet's variety (a dropped entry is only recomputed).
MEMO_LIMIT = 100_000
# A decision depends on the workspace id only through whether there is one (core/whatif.py).
_ANY_WORKSPACE = "any-workspace"


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
    """How many workspaces are stored (of one org, if given); ``StoreUnavailableError`` when
    the store fails."""
    return fleet.count_workspaces(
        context.store, None if org_id is None else parse_id("org_id", org_id)
    )


def stream_fleet_rows(
    context: ServiceContext, org_id: UUID | None = None, page_size: int = WHATIF_PAGE_SIZE
) -> Iterator[Sequence[Any]]:
    """Every stored workspace's raw row (of one org, if given) in id order, page by page."""
    return fleet.fleet_rows(context.store, org_id, page_size)


def sealed_row_model(context: ServiceContext, row: Sequence[Any]) -> str | None:
    """A fleet row's effective model, as the read path takes it: the model column, else the
    row's sealed ``MOLECULE_MODEL``/``MODEL`` secrets, decrypted. Raises
    :class:`LlmBillingError` when a model secret cannot be decrypted."""
    workspace_id, org, model = row[0], row[1], row[4]
    return stored_model(
        context,
        workspace_id=as_uuid(workspace_id),
        org_id=as_uuid(org),
        model=model,
        model_secrets=unpack_model_secrets(row[10], row[11]),
    )


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

    Each workspace is decided exactly as the read path decides it (same inputs, same effective
    model, an undecryptable model secret making the row unreadable). The database groups the
    workspaces by their stored inputs and counts them per org; Python decides each distinct
    input once. Only rows whose model sits in sealed secrets are read one by one (fetched
    ``page_size`` at a time), to decrypt it. Samples are the lowest ids of each class.
    ``on_progress`` is called with the number of workspaces done, at every multiple of
    ``progress_every`` passed and at the end. Raises :class:`StoreUnavailableError` when the
    store fails.
    """
    parsed_org = None if org_id is None else parse_id("org_id", org_id)
    current = current_configuration(context)
    tally = WhatIfTally(current, proposed, samples_per_class, format_id=_format_id)
    # One "now" for the whole run, as one read would take it: expiry is judged against it.
    now = decision_time()
    changes = _Changes(context, current, proposed, now)
    progress = _Progress(on_progress, progress_every)
    offered: list[tuple[UUID, Change]] = []
    with fleet.grouped_fleet(context.store, parsed_org, now) as grouped:
        change_numbers: dict[Change, int] = {}
        change_of: dict[fleet.StoredInputs, int] = {}
        for inputs in grouped.distinct_inputs():
            change = changes.of_inputs(inputs)
            change_of[inputs] = change_numbers.setdefault(change, len(change_numbers))
        numbered = list(change_numbers)
        sample_groups = _SampleGroups(samples_per_class)
        for group in grouped.groups(change_of):
            if group.change is not None:
                change = numbered[group.change]
            else:  # its inputs were written after distinct_inputs read them
                assert group.inputs is not None
                change = changes.of_inputs(group.inputs)
            tally.add_many(group.org_id, change, group.workspaces)
            if tally.wants_samples(change):
                sample_groups.consider(group, change)
            progress.advance(tally.total)
        for workspace_id, group in grouped.lowest_ids(
            change_of, sample_groups.chosen(), samples_per_class
        ):
            offered.append((workspace_id, sample_groups.change_of(group)))
        sealed_samples = _SealedSamples(samples_per_class)
        for row in grouped.sealed_model_rows(page_size):
            change = changes.of_sealed_row(row)
            tally.add_many(as_uuid(row[1]), change, 1)
            if tally.wants_samples(change):
                sealed_samples.consider(as_uuid(row[0]), change)
            progress.advance(tally.total)
        offered.extend(sealed_samples.kept())
    # Offered in id order, the tally keeps each class's lowest ids: among these they are.
    for workspace_id, change in sorted(offered, key=lambda pair: pair[0]):
        tally.offer_sample(workspace_id, change)
    progress.finish(tally.total)
    return tally.report()


class _Changes:
    """The change of stored inputs, remembered per distinct input: the key holds the model
    only as its derivation under each registry (most models derive alike), and the credential
    names only as the registry credentials among them."""

    def __init__(
        self,
        context: ServiceContext,
        current: Configuration,
        proposed: Configuration,
        now: datetime,
    ) -> None:
        self._context = context
        self._current = current
        self._proposed = proposed
        self._now = now
        self._memo: dict[tuple[Any, ...], Change] = {}
        self._credentials = _CredentialNames(current, proposed)
        self._derivations = _DerivationKeys(current, proposed)

    def of_inputs(self, inputs: fleet.StoredInputs) -> Change:
        return self._change(
            inputs.override,
            inputs.expired_at,
            inputs.org_default,
            inputs.runtime,
            inputs.model,
            inputs.workspace_secret_names,
            inputs.org_secret_names,
        )

    def of_sealed_row(self, row: Sequence[Any]) -> Change:
        """A row of ``GroupedFleet.sealed_model_rows``: its model decrypted as the read path
        does; an undecryptable model secret makes the row unreadable."""
        workspace_id, _, override, runtime, _, org_default = row[:6]
        workspace_names, org_names = row[8:10]
        try:
            model = sealed_row_model(self._context, row)
        except LlmBillingError as error:
            inputs = unreadable_inputs(
                self._context, as_uuid(workspace_id), f"{error.code}: {error.message}"
            )
            return compare(inputs, self._current, self._proposed).change
        expired_at = override_expired_at(stored_timestamp(row[12]), self._now)
        return self._change(
            override, expired_at, org_default, runtime, model, workspace_names, org_names
        )

    def _change(
        self,
        override: str | None,
        expired_at: datetime | None,
        org_default: str | None,
        runtime: str | None,
        model: str | None,
        workspace_names: str | None,
        org_names: str | None,
    ) -> Change:
        workspace_credentials = self._credentials.of(workspace_names)
        org_credentials = self._credentials.of(org_names)
        # Keyed on the passed expiry, never on now: unexpired overrides share memo entries.
        key = (
            override,
            expired_at,
            org_default,
            self._derivations.of(runtime, model),
            workspace_credentials,
            org_credentials,
        )
        change = self._memo.get(key)
        if change is None:
            if len(self._memo) >= MEMO_LIMIT:
                self._memo.clear()
            inputs = stored_inputs(
                self._context,
                workspace_id=_ANY_WORKSPACE,
                override=override,
                org_default=org_default,
                runtime=runtime,
                model=effective_model(None, model, {}),
                auth_env=workspace_credentials | org_credentials,
                override_expires_at=expired_at,
                now=self._now,
            )
            change = self._memo[key] = compare(inputs, self._current, self._proposed).change
        return change


class _SampleGroups:
    """Per sample class (a changed mode transition, a danger class), the ``limit`` groups with
    the lowest lowest-ids: a class's ``limit`` lowest ids all lie in those groups (each id at
    or below the class's limit-th lowest belongs to a group whose lowest id is one of them)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        # Max-heaps by lowest id (negated): the root is the group to drop first.
        self._heaps: dict[Hashable, list[tuple[int, int, fleet.InputGroup]]] = {}
        self._changes: dict[tuple[UUID, int | None, str | None], Change] = {}
        self._order = 0

    def consider(self, group: fleet.InputGroup, change: Change) -> None:
        self._changes[group.identity] = change
        for sample_class in _sample_classes(change):
            heap = self._heaps.setdefault(sample_class, [])
            self._order += 1
            entry = (-group.lowest_id.int, self._order, group)
            if len(heap) < self._limit:
                heapq.heappush(heap, entry)
            elif entry > heap[0]:
                heapq.heapreplace(heap, entry)

    def chosen(self) -> list[fleet.InputGroup]:
        unique = {entry[2].identity: entry[2] for heap in self._heaps.values() for entry in heap}
        return list(unique.values())

    def change_of(self, group: fleet.InputGroup) -> Change:
        return self._changes[group.identity]


class _SealedSamples:
    """The ``limit`` lowest-id sealed rows of each sample class, whatever order they come in."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        # Max-heaps by id (negated): the root is the row to drop first.
        self._heaps: dict[Hashable, list[tuple[int, UUID, Change]]] = {}

    def consider(self, workspace_id: UUID, change: Change) -> None:
        entry = (-workspace_id.int, workspace_id, change)
        for sample_class in _sample_classes(change):
            heap = self._heaps.setdefault(sample_class, [])
            if len(heap) < self._limit:
                heapq.heappush(heap, entry)
            elif entry > heap[0]:
                heapq.heapreplace(heap, entry)

    def kept(self) -> list[tuple[UUID, Change]]:
        unique = {entry[1]: entry[2] for heap in self._heaps.values() for entry in heap}
        return list(unique.items())


def _sample_classes(change: Change) -> list[Hashable]:
    """The classes the tally samples a workspace of ``change`` in."""
    classes: list[Hashable] = list(change.dangers)
    if change.mode_changed:
        classes.append(change.mode_transition)
    return classes


class _Progress:
    """Calls ``on_progress`` at every multiple of ``every`` passed, and at the end."""

    def __init__(self, on_progress: Callable[[int], None] | None, every: int) -> None:
        self._on_progress = on_progress
        self._every = every
        self._reported = 0

    def advance(self, done: int) -> None:
        if self._on_progress is None:
            return
        while self._reported + self._every <= done:
            self._reported += self._every
            self._on_progress(self._reported)

    def finish(self, done: int) -> None:
        if self._on_progress is not None:
            self._on_progress(done)


class _CredentialNames:
    """The credential names (under either configuration's registry) in an aggregated list of
    secret names, remembered per distinct list: other secrets must not split the memo."""

    def __init__(self, current: Configuration, proposed: Configuration) -> None:
        self._registries = (current.registry, proposed.registry)
        self._seen: dict[str | None, frozenset[str]] = {}

    def of(self, aggregated: str | None) -> frozenset[str]:
        found = self._seen.get(aggregated)
        if found is None:
            if len(self._seen) >= MEMO_LIMIT:
                self._seen.clear()
            names = split_secret_names(aggregated)
            found = self._seen[aggregated] = frozenset().union(
                *(relevant_auth_env(names, registry) for registry in self._registries)
            )
        return found


class _DerivationKeys:
    """A (runtime, model)'s derivation keys under both configurations' registries, remembered
    per distinct pair: many models derive alike, and a change depends on the model only
    through its derivation (see :func:`derivation_key`), so the memo is keyed by those."""

    def __init__(self, current: Configuration, proposed: Configuration) -> None:
        self._registries = (current.registry, proposed.registry)
        self._seen: dict[tuple[str | None, str | None], tuple[Hashable, Hashable]] = {}

    def of(self, runtime: str | None, model: str | None) -> tuple[Hashable, Hashable]:
        """Keyed by the stored model; derived from its effective model, as decisions are."""
        found = self._seen.get((runtime, model))
        if found is None:
            if len(self._seen) >= MEMO_LIMIT:
                self._seen.clear()
            current, proposed = self._registries
            effective = effective_model(None, model, {})
            found = self._seen[runtime, model] = (
                derivation_key(current, runtime, effective),
                derivation_key(proposed, runtime, effective),
            )
        return found


def _format_id(raw: Hashable) -> str:
    return str(as_uuid(raw))
