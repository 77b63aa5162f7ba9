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
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar
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

    def count(org: Hashable, change: Change, workspaces: int) -> None:
        tally.add_many(org, change, workspaces)
        progress.advance(tally.total)

    def classes(change: Change) -> list[tuple[Hashable, int]]:
        return [(sample_class, samples_per_class) for sample_class in _sample_classes(change)]

    with fleet.grouped_fleet(context.store, parsed_org, now) as grouped:
        candidates = decide_grouped(
            grouped,
            changes.of_inputs,
            changes.of_sealed_row,
            count=count,
            sample_classes=classes,
            largest_sample_limit=samples_per_class,
            page_size=page_size,
        )
    # Offered in id order, the tally keeps each class's lowest ids: among these they are.
    for workspace_id, _, change in candidates:
        tally.offer_sample(workspace_id, change)
    progress.finish(tally.total)
    return tally.report()


Decision = TypeVar("Decision", bound=Hashable)


def decide_grouped(
    grouped: fleet.GroupedFleet,
    decide: Callable[[fleet.StoredInputs], Decision],
    decide_sealed_row: Callable[[Sequence[Any]], Decision],
    *,
    count: Callable[[Hashable, Decision, int], None],
    sample_classes: Callable[[Decision], Iterable[tuple[Hashable, int]]],
    largest_sample_limit: int,
    page_size: int = WHATIF_PAGE_SIZE,
) -> list[tuple[UUID, UUID, Decision]]:
    """The one grouped engine of the what-if and the change preview: every workspace of
    ``grouped``'s scope decided, each distinct stored input once (``decide``; rows whose
    model sits in sealed secrets one by one, ``decide_sealed_row`` with rows of
    ``GroupedFleet.sealed_model_rows``), and counted with ``count(org, decision, workspaces)``
    (per org and decision, several calls may add to one pair; ``org`` is the id as the store
    returns it: a UUID, or hex text on SQLite, see ``workspace_read.as_uuid``).

    Returns (workspace id, org id, decision) candidates in id order: for every sample class
    and limit ``sample_classes(decision)`` names, the ``limit`` lowest ids of the workspaces
    in that class are among them (taking, in order, the candidates of a class gives exactly
    its lowest ids). No limit may exceed ``largest_sample_limit``. Decisions must be hashable
    and equal when they decide alike.
    """
    if grouped.streams_rows:
        return _decide_streamed(
            grouped, decide, decide_sealed_row, count, sample_classes, page_size
        )
    if grouped.groups_one_org:
        candidates = _decide_org_groups(
            grouped, decide, count, sample_classes, largest_sample_limit
        )
    else:
        candidates = _decide_fleet_groups(grouped, decide, count, sample_classes)
    sealed_samples: _SealedSamples[Decision] = _SealedSamples()
    for row in grouped.sealed_model_rows(page_size):
        decision = decide_sealed_row(row)
        org = as_uuid(row[1])
        count(org, decision, 1)
        sealed_samples.consider(as_uuid(row[0]), org, decision, sample_classes(decision))
    candidates.extend(sealed_samples.kept())
    return sorted(candidates, key=lambda candidate: candidate[0])


def _decide_org_groups(
    grouped: fleet.GroupedFleet,
    decide: Callable[[fleet.StoredInputs], Decision],
    count: Callable[[Hashable, Decision, int], None],
    sample_classes: Callable[[Decision], Iterable[tuple[Hashable, int]]],
    largest_sample_limit: int,
) -> list[tuple[UUID, UUID, Decision]]:
    """The unsealed workspaces of one org (``GroupedFleet.org_groups``): each group decided
    and counted; its candidates are its lowest ids, as many as its decision's largest class
    limit (a class's ``limit`` lowest ids are each among the ``limit`` lowest of their group)."""
    org = grouped.org_id
    assert org is not None
    candidates: list[tuple[UUID, UUID, Decision]] = []
    for group in grouped.org_groups(largest_sample_limit):
        decision = decide(group.inputs)
        count(org, decision, group.workspaces)
        wanted = max((limit for _, limit in sample_classes(decision)), default=0)
        candidates.extend(
            (workspace_id, org, decision) for workspace_id in group.lowest_ids[:wanted]
        )
    return candidates


def _decide_fleet_groups(
    grouped: fleet.GroupedFleet,
    decide: Callable[[fleet.StoredInputs], Decision],
    count: Callable[[Hashable, Decision, int], None],
    sample_classes: Callable[[Decision], Iterable[tuple[Hashable, int]]],
) -> list[tuple[UUID, UUID, Decision]]:
    """The unsealed workspaces of the fleet: distinct inputs decided, counted per org and
    decision by the database, candidates from the groups that can hold a class's lowest ids."""
    decision_numbers: dict[Decision, int] = {}
    change_of: dict[fleet.StoredInputs, int] = {}
    for inputs in grouped.distinct_inputs():
        decision = decide(inputs)
        change_of[inputs] = decision_numbers.setdefault(decision, len(decision_numbers))
    numbered = list(decision_numbers)
    sample_groups: _SampleGroups[Decision] = _SampleGroups()
    for group in grouped.groups(change_of):
        if group.change is not None:
            decision = numbered[group.change]
        else:  # its inputs were written after distinct_inputs read them
            assert group.inputs is not None
            decision = decide(group.inputs)
        count(group.org_id, decision, group.workspaces)
        sample_groups.consider(group, decision, sample_classes(decision))
    return [
        (workspace_id, group.org_id, sample_groups.decision_of(group))
        for workspace_id, group in grouped.lowest_ids(
            change_of, sample_groups.chosen(), sample_groups.largest_limit
        )
    ]


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


def _decide_streamed(
    grouped: fleet.GroupedFleet,
    decide: Callable[[fleet.StoredInputs], Decision],
    decide_sealed_row: Callable[[Sequence[Any]], Decision],
    count: Callable[[Hashable, Decision, int], None],
    sample_classes: Callable[[Decision], Iterable[tuple[Hashable, int]]],
    page_size: int,
) -> list[tuple[UUID, UUID, Decision]]:
    """:func:`decide_grouped` over the scope's rows streamed in id order and grouped here
    (``GroupedFleet.streams_rows``): the same decisions, counts and candidates. Counts are
    handed to ``count`` every ``page_size`` rows; candidates are the first rows of each class."""
    now = grouped.now
    # Raw stored inputs (expiry only as "has it passed") to a decision number; bounded.
    numbers: dict[tuple[Any, ...], int] = {}
    decision_numbers: dict[Decision, int] = {}
    decisions: list[Decision] = []
    classes_of: list[list[tuple[Hashable, int]]] = []
    taken: dict[Hashable, int] = {}
    candidates: list[tuple[UUID, UUID, Decision]] = []
    # (raw org id, decision number) per row, counted a page at a time.
    pairs: list[tuple[Any, int]] = []

    def number_of(decision: Decision) -> int:
        number = decision_numbers.get(decision)
        if number is None:
            number = decision_numbers[decision] = len(decisions)
            decisions.append(decision)
            classes_of.append([pair for pair in sample_classes(decision) if pair[1] > 0])
        return number

    def flush() -> None:
        for (org, number), workspaces in Counter(pairs).items():
            count(org, decisions[number], workspaces)
        pairs.clear()

    for index, row in enumerate(grouped.rows(page_size), start=1):
        if row[10] is not None or row[11] is not None:
            # A sealed model: decided row by row, as the read path decrypts it.
            number = number_of(decide_sealed_row(row))
        else:
            expires = None if row[12] is None else stored_timestamp(row[12])
            passed = override_expired_at(expires, now)
            key = (row[2], passed is not None, row[5], row[3], row[4], row[8], row[9])
            found = numbers.get(key)
            if found is None:
                if len(numbers) >= MEMO_LIMIT:
                    numbers.clear()
                inputs = fleet.StoredInputs(
                    override=row[2],
                    expired_at=passed,
                    org_default=row[5],
                    runtime=row[3],
                    model=row[4],
                    workspace_secret_names=row[8],
                    org_secret_names=row[9],
                )
                found = numbers[key] = number_of(decide(inputs))
            number = found
        pairs.append((row[1], number))
        kept = False
        for sample_class, limit in classes_of[number]:
            seen = taken.get(sample_class, 0)
            if seen < limit:
                taken[sample_class] = seen + 1
                kept = True
        if kept:
            candidates.append((as_uuid(row[0]), as_uuid(row[1]), decisions[number]))
        if index % page_size == 0:
            flush()
    flush()
    return candidates


class _SampleGroups(Generic[Decision]):
    """Per sample class of limit ``limit``, the ``limit`` groups with the lowest lowest-ids: a
    class's ``limit`` lowest ids all lie in those groups (each id at or below the class's
    limit-th lowest belongs to a group whose lowest id is one of them)."""

    def __init__(self) -> None:
        # Max-heaps by lowest id (negated): the root is the group to drop first.
        self._heaps: dict[Hashable, list[tuple[int, int, fleet.InputGroup]]] = {}
        self._decisions: dict[tuple[UUID, int | None, str | None], Decision] = {}
        self._order = 0
        self.largest_limit = 0

    def consider(
        self,
        group: fleet.InputGroup,
        decision: Decision,
        classes: Iterable[tuple[Hashable, int]],
    ) -> None:
        for sample_class, limit in classes:
            if limit <= 0:
                continue
            self._decisions[group.identity] = decision
            self.largest_limit = max(self.largest_limit, limit)
            heap = self._heaps.setdefault(sample_class, [])
            self._order += 1
            entry = (-group.lowest_id.int, self._order, group)
            if len(heap) < limit:
                heapq.heappush(heap, entry)
            elif entry > heap[0]:
                heapq.heapreplace(heap, entry)

    def chosen(self) -> list[fleet.InputGroup]:
        unique = {entry[2].identity: entry[2] for heap in self._heaps.values() for entry in heap}
        return list(unique.values())

    def decision_of(self, group: fleet.InputGroup) -> Decision:
        return self._decisions[group.identity]


class _SealedSamples(Generic[Decision]):
    """Per sample class of limit ``limit``, its ``limit`` lowest-id sealed rows, whatever
    order they come in."""

    def __init__(self) -> None:
        # Max-heaps by id (negated): the root is the row to drop first.
        self._heaps: dict[Hashable, list[tuple[int, UUID, UUID, Decision]]] = {}

    def consider(
        self,
        workspace_id: UUID,
        org_id: UUID,
        decision: Decision,
        classes: Iterable[tuple[Hashable, int]],
    ) -> None:
        entry = (-workspace_id.int, workspace_id, org_id, decision)
        for sample_class, limit in classes:
            if limit <= 0:
                continue
            heap = self._heaps.setdefault(sample_class, [])
            if len(heap) < limit:
                heapq.heappush(heap, entry)
            elif entry[0] > heap[0][0]:
                heapq.heapreplace(heap, entry)

    def kept(self) -> list[tuple[UUID, UUID, Decision]]:
        unique = {
            entry[1]: (entry[1], entry[2], entry[3])
            for heap in self._heaps.values()
            for entry in heap
        }
        return list(unique.values())


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
