"""Secret values and how a workspace's two secret scopes merge (spec §4, §5). Pure.

A :class:`SecretValue` carries a decrypted value through provisioning; its ``repr``/``str``
never show the value, so logging one by accident leaks nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class SecretScope(StrEnum):
    """Where a secret was set: inherited from the org, or set on the workspace itself."""

    ORG = "org"
    WORKSPACE = "workspace"


@dataclass(frozen=True, slots=True, repr=False)
class SecretValue:
    """A secret's value and the scope it came from. ``repr``/``str`` show the scope only."""

    value: str = field(repr=False)
    scope: SecretScope

    def __repr__(self) -> str:
        return f"SecretValue(scope={self.scope.value!r}, value=<redacted>)"

    @property
    def is_blank(self) -> bool:
        """Empty or white space only: such a secret does not count as present."""
        return not self.value.strip()


def merge_secret_scopes(
    org: Mapping[str, str], workspace: Mapping[str, str]
) -> dict[str, SecretValue]:
    """The workspace's env: org-scope secrets overlaid by workspace-scope secrets of the same name.

    Each value remembers the scope it came from. Names are kept exactly as given.
    """
    merged = {name: SecretValue(value, SecretScope.ORG) for name, value in org.items()}
    merged.update(
        (name, SecretValue(value, SecretScope.WORKSPACE)) for name, value in workspace.items()
    )
    return merged
