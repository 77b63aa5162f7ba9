"""A realistic synthetic fleet for demos and benchmarks, written in bulk.

The fleet is a deterministic function of (workspace count, seed, registry): the same ids,
orgs, runtimes, models, overrides and secret names every time. Ciphertexts differ between runs
(fresh nonces), the values they seal do not. PostgreSQL is filled with COPY, SQLite with
executemany batches, all inside the caller's transaction.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Table, insert, select

from llmbilling.core.registry import CompiledRegistry
from llmbilling.store.crypto import KeyRing, SecretLocation, SecretScopeName
from llmbilling.store.tables import org_secrets, organizations, workspace_secrets, workspaces

WORKSPACES_PER_ORG = 20
BATCH_SIZE = 10_000

# Org defaults as found in the wild: absent, clean, differently cased, padded, garbled.
_ORG_DEFAULTS: tuple[tuple[str | None, int], ...] = (
    (None, 40),
    ("platform_managed", 15),
    ("byok", 15),
    ("disabled", 4),
    ("  BYOK ", 5),
    ("Platform_Managed", 5),
    ("DISABLED", 2),
    ("byokk", 5),
    ("platform-managed", 4),
    ("", 5),
)
_OVERRIDES: tuple[tuple[str | None, int], ...] = (
    (None, 88),
    ("byok", 5),
    ("platform_managed", 5),
    ("disabled", 2),
)
_PLATFORM_MODELS = (
    "platform/claude-opus-4-7",
    "platform:gpt-5.5",
    "anthropic/claude-sonnet-4-6",
    "openai/gpt-5.4",
    "google/gemini-2.5-pro",
)
_UNREGISTERED_MODELS = ("totally-made-up", "llama-3.3-70b", "mistral-large-latest", "qwen3-coder")
_ORG_CREDENTIALS = (
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "GEMINI_API_KEY",
    "CLAUDE_CODE_OAUTH_TOKEN",
)


@dataclass(frozen=True, slots=True)
class FleetCounts:
    orgs: int
    workspaces: int
    org_secrets: int
    workspace_secrets: int

    def to_dict(self) -> dict[str, int]:
        return {
            "orgs": self.orgs,
            "workspaces": self.workspaces,
            "org_secrets": self.org_secrets,
            "workspace_secrets": self.workspace_secrets,
        }


def _weighted(rng: random.Random, table: Sequence[tuple[str | None, int]]) -> str | None:
    values = [value for value, _ in table]
    weights = [weight for _, weight in table]
    return rng.choices(values, weights)[0]


def _uuid(rng: random.Random) -> UUID:
    return UUID(int=rng.getrandbits(128), version=4)


def _demo_value(rng: random.Random, name: str) -> str:
    return f"demo-{name.lower()}-{rng.getrandbits(64):016x}"


class _FleetGenerator:
    """Draws the fleet from one seeded random stream."""

    def __init__(self, registry: CompiledRegistry, seed: int, stamp: datetime) -> None:
        self.rng = random.Random(seed)
        self.stamp = stamp
        self.runtimes = sorted(registry.runtimes)
        self.registry = registry
        # Registered model ids per runtime, original spelling, and the provider they derive to
        # (ambiguous aliases included: resolution must cope with them).
        self.registered: dict[str, list[tuple[str, str]]] = {
            runtime: sorted(
                (candidate.rule, candidate.provider)
                for match in registry.tables[runtime].exact.values()
                for candidate in match.candidates
                if candidate.provider != registry.platform_provider
            )
            for runtime in self.runtimes
        }

    def orgs(self, count: int) -> list[dict[str, Any]]:
        return [
            {
                "id": _uuid(self.rng),
                "name": f"demo-org-{index:06d}",
                "llm_billing_mode_default": _weighted(self.rng, _ORG_DEFAULTS),
                "created_at": self.stamp,
                "updated_at": self.stamp,
            }
            for index in range(count)
        ]

    def org_secrets(self, orgs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for org in orgs:
            if self.rng.random() < 0.5:
                rows.append(self._secret(org["id"], self.rng.choice(_ORG_CREDENTIALS)))
            if self.rng.random() < 0.05:
                rows.append(self._secret(org["id"], "MODEL", "gpt-5.5"))
        return rows

    def _secret(self, owner: UUID, name: str, value: str | None = None) -> dict[str, Any]:
        return {
            "owner": owner,
            "key": name,
            "value": value if value is not None else _demo_value(self.rng, name),
        }

    def workspaces(
        self, count: int, org_ids: Sequence[UUID]
    ) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
        """Batches of (workspace rows, workspace secret rows)."""
        rng = self.rng
        for start in range(0, count, BATCH_SIZE):
            rows: list[dict[str, Any]] = []
            secret_rows: list[dict[str, Any]] = []
            for index in range(start, min(start + BATCH_SIZE, count)):
                workspace_id = _uuid(rng)
                runtime = rng.choice(self.runtimes)
                model, provider, model_secret = self._model(runtime)
                rows.append(
                    {
                        "id": workspace_id,
                        "org_id": org_ids[rng.randrange(len(org_ids))],
                        "name": f"demo-workspace-{index:07d}",
                        "runtime": runtime,
                        "model": model,
                        "llm_billing_mode": _weighted(rng, _OVERRIDES),
                        "created_at": self.stamp,
                        "updated_at": self.stamp,
                    }
                )
                names: set[str] = set()
                if model_secret is not None:
                    names.add("MOLECULE_MODEL")
                    secret_rows.append(self._secret(workspace_id, "MOLECULE_MODEL", model_secret))
                if provider is not None and rng.random() < 0.3:
                    auth_env = sorted(self.registry.providers[provider].auth_env)
                    if auth_env:
                        names.add(rng.choice(auth_env))
                # A few workspaces carry a credential of another vendor on purpose.
                if rng.random() < 0.03:
                    names.add("MINIMAX_API_KEY")
                secret_rows.extend(
                    self._secret(workspace_id, name) for name in sorted(names - {"MOLECULE_MODEL"})
                )
            yield rows, secret_rows

    def _model(self, runtime: str) -> tuple[str | None, str | None, str | None]:
        """(model column, vendor provider it derives to, MOLECULE_MODEL secret value)."""
        roll = self.rng.random()
        if roll < 0.55 and self.registered[runtime]:
            model, provider = self.rng.choice(self.registered[runtime])
            return model, provider, None
        if roll < 0.70:
            return self.rng.choice(_PLATFORM_MODELS), None, None
        if roll < 0.80:
            return self.rng.choice(_UNREGISTERED_MODELS), None, None
        if roll < 0.90 and self.registered[runtime]:
            model, provider = self.rng.choice(self.registered[runtime])
            return None, provider, model
        return None, None, None


def first_org_id(registry: CompiledRegistry, seed: int) -> UUID:
    """The id of the first org a seed produces (to refuse seeding the same fleet twice)."""
    first: UUID = _FleetGenerator(registry, seed, datetime.min).orgs(1)[0]["id"]
    return first


def seed_taken(connection: Connection, registry: CompiledRegistry, seed: int) -> bool:
    """Whether ``seed``'s fleet is already stored (its first org exists): one statement."""
    taken = connection.execute(
        select(organizations.c.id).where(organizations.c.id == first_org_id(registry, seed))
    ).first()
    return taken is not None


def seed_fleet(
    connection: Connection,
    *,
    workspace_count: int,
    seed: int,
    registry: CompiledRegistry,
    key_ring: KeyRing,
    stamp: datetime,
) -> FleetCounts:
    """Write a fleet inside the caller's transaction. Returns what was written."""
    generator = _FleetGenerator(registry, seed, stamp)
    org_count = max(1, -(-workspace_count // WORKSPACES_PER_ORG))
    orgs = generator.orgs(org_count)
    writer = _writer(connection)
    writer(organizations, orgs)
    org_secret_rows = generator.org_secrets(orgs)
    writer(org_secrets, _sealed(org_secret_rows, "org", key_ring, stamp))
    org_ids = [org["id"] for org in orgs]
    workspace_secret_count = 0
    for rows, secret_rows in generator.workspaces(workspace_count, org_ids):
        writer(workspaces, rows)
        writer(workspace_secrets, _sealed(secret_rows, "workspace", key_ring, stamp))
        workspace_secret_count += len(secret_rows)
    return FleetCounts(org_count, workspace_count, len(org_secret_rows), workspace_secret_count)


def _sealed(
    rows: Sequence[dict[str, Any]], scope: SecretScopeName, key_ring: KeyRing, stamp: datetime
) -> list[dict[str, Any]]:
    owner_column = "org_id" if scope == "org" else "workspace_id"
    sealed_rows: list[dict[str, Any]] = []
    for row in rows:
        location = SecretLocation(scope, row["owner"], row["key"])
        sealed = key_ring.encrypt(row["value"], location)
        sealed_rows.append(
            {
                owner_column: row["owner"],
                "key": row["key"],
                "ciphertext": sealed.ciphertext,
                "key_version": sealed.key_version,
                "key_fingerprint": sealed.key_fingerprint,
                "updated_at": stamp,
            }
        )
    return sealed_rows


_RowWriter = Callable[[Table, Sequence[dict[str, Any]]], None]


def _writer(connection: Connection) -> _RowWriter:
    if connection.dialect.name == "postgresql":
        return lambda table, rows: _copy_rows(connection, table, rows)
    return lambda table, rows: _insert_rows(connection, table, rows)


def _insert_rows(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    for start in range(0, len(rows), BATCH_SIZE):
        connection.execute(insert(table), list(rows[start : start + BATCH_SIZE]))


def _copy_rows(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    columns = list(rows[0])
    driver_connection = connection.connection.driver_connection
    assert driver_connection is not None
    column_list = ", ".join(f'"{name}"' for name in columns)
    with (
        driver_connection.cursor() as cursor,
        cursor.copy(f'COPY "{table.name}" ({column_list}) FROM STDIN') as copy,
    ):
        for row in rows:
            copy.write_row(tuple(row[name] for name in columns))
