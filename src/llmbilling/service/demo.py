"""``demo seed``: fill the store with a synthetic fleet, audited as one change."""

from __future__ import annotations

from llmbilling.errors import AlreadyExistsError, InvalidInputError
from llmbilling.service import audit
from llmbilling.service.audit import AuditContext
from llmbilling.service.context import ServiceContext, writing
from llmbilling.store.seed import FleetCounts, seed_fleet, seed_taken


def seed_demo_fleet(
    context: ServiceContext,
    *,
    workspace_count: int,
    seed: int,
    audit_context: AuditContext | None = None,
) -> FleetCounts:
    """Write a deterministic fleet of ``workspace_count`` workspaces in one transaction.

    Raises :class:`AlreadyExistsError` when this seed's fleet is already in the store.
    """
    if workspace_count < 1:
        raise InvalidInputError("workspaces", "must be at least 1")
    registry = context.require_registry()
    key_ring = context.key_ring
    who = audit_context or AuditContext()
    with writing(context) as connection:
        if seed_taken(connection, registry, seed):
            raise AlreadyExistsError(
                f"the demo fleet of seed {seed} is already in the store; use another --seed"
            )
        counts = seed_fleet(
            connection,
            workspace_count=workspace_count,
            seed=seed,
            registry=registry,
            key_ring=key_ring,
            stamp=audit.now(),
        )
        audit.record(connection, who, "demo.seeded", after={"seed": seed, **counts.to_dict()})
    return counts
