"""Fleet what-if over the store: stream every workspace, decide it under the current and a
proposed configuration, tally. Memory stays flat in fleet size: rows arrive in keyset pages and
only counts, bounded samples and a bounded memo are kept.

Per row the work is a few dict probes: rows whose stored inputs decide alike share one
comparison. The memo key holds the model only as its derivation under each registry (most
models derive alike), and the credential names only as the registry credentials among them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
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
    model, an undecryptable model secret making the row unreadable). ``on_progress`` is called
    with the number of workspaces done, every ``progress_every`` rows and at the end. Raises
    :class:`StoreUnavailableError` when the store fails.
    """
    parsed_org = None if org_id is None else parse_id("org_id", org_id)
    current = current_configuration(context)
    tally = WhatIfTally(current, proposed, samples_per_class, format_id=_format_id)
    memo: dict[tuple[Any, ...], Change] = {}
    credentials = _CredentialNames(current, proposed)
    derivations = _DerivationKeys(current, proposed)
    # One "now" for the whole run, as one read would take it: expiry is judged against it.
    now = decision_time()
    for row in stream_fleet_rows(context, parsed_org, page_size):
        workspace_id, org, override, runtime, model, org_default = row[:6]
        workspace_names, org_names, workspace_models, org_models = row[8:12]
        # Keyed on the passed expiry, never on now: unexpired overrides share memo entries.
        expired_at = override_expired_at(stored_timestamp(row[12]), now)
        if workspace_models is not None or org_models is not None:
            try:
                model = sealed_row_model(context, row)
            except LlmBillingError as error:
                inputs = unreadable_inputs(
                    context, as_uuid(workspace_id), f"{error.code}: {error.message}"
                )
                tally.add(org, workspace_id, compare(inputs, current, proposed).change)
                continue
        workspace_credentials = credentials.of(workspace_names)
        org_credentials = credentials.of(org_names)
        key = (
            override,
            expired_at,
            org_default,
            derivations.of(runtime, model),
            workspace_credentials,
            org_credentials,
        )
        change = memo.get(key)
        if change is None:
            if len(memo) >= MEMO_LIMIT:
                memo.clear()
            inputs = stored_inputs(
                context,
                workspace_id=str(workspace_id),
                override=override,
                org_default=org_default,
                runtime=runtime,
                model=effective_model(None, model, {}),
                auth_env=workspace_credentials | org_credentials,
                override_expires_at=expired_at,
                now=now,
            )
            change = memo[key] = compare(inputs, current, proposed).change
        tally.add(org, workspace_id, change)
        if on_progress is not None and tally.total % progress_every == 0:
            on_progress(tally.total)
    if on_progress is not None:
        on_progress(tally.total)
    return tally.report()


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
