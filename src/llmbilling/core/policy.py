"""The precedence policy as versioned data: an ordered list of rungs plus named options. Pure.

The contract's chain is :data:`CONTRACT_POLICY`; a deployment (or a what-if) may supply another
document, validated by :func:`compile_policy`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmbilling.core.documents import content_hash, validate_document
from llmbilling.core.modes import RungName
from llmbilling.errors import PolicyError


class PolicyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    own_key_wins_over_org_default: bool = Field(
        default=False,
        description="A derived vendor provider whose own credential is present beats the org"
        " default.",
    )


class PolicyDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    rungs: list[RungName] = Field(min_length=1)
    options: PolicyOptions = Field(default_factory=PolicyOptions)

    @model_validator(mode="after")
    def _chain_is_well_formed(self) -> PolicyDocument:
        if len(set(self.rungs)) != len(self.rungs):
            raise ValueError("a rung may appear only once")
        if self.rungs[-1] is not RungName.DEPLOYMENT_DEFAULT:
            # The fail-closed rung always decides, so it must end every chain: a chain that can
            # run out of rungs would have no decision at all.
            raise ValueError(f"the last rung must be {RungName.DEPLOYMENT_DEFAULT.value!r}")
        if self.options.own_key_wins_over_org_default and not _precedes(
            self.rungs, RungName.ORG_DEFAULT, RungName.DERIVED_PROVIDER
        ):
            raise ValueError(
                "option own_key_wins_over_org_default needs org_default before derived_provider"
            )
        return self


def _precedes(rungs: list[RungName], first: RungName, then: RungName) -> bool:
    return first in rungs and then in rungs and rungs.index(first) < rungs.index(then)


@dataclass(frozen=True, slots=True, eq=False)
class CompiledPolicy:
    """A validated policy. ``version`` is a content hash; compared and hashed by identity."""

    version: str
    rungs: tuple[RungName, ...]
    own_key_wins_over_org_default: bool
    document: PolicyDocument

    def to_document(self) -> dict[str, Any]:
        """The policy as a plain document, as it would be written to YAML."""
        return self.document.model_dump(mode="json")


def compile_policy(document: Mapping[str, Any], source: str) -> CompiledPolicy:
    """Validate a parsed policy document.

    Raises :class:`PolicyError` naming ``source``, the path inside the document and the problem.
    """
    parsed = validate_document(PolicyDocument, document, source, PolicyError)
    return CompiledPolicy(
        version=content_hash(parsed),
        rungs=tuple(parsed.rungs),
        own_key_wins_over_org_default=parsed.options.own_key_wins_over_org_default,
        document=parsed,
    )


CONTRACT_POLICY: CompiledPolicy = compile_policy(
    {"schema_version": 1, "rungs": [rung.value for rung in RungName]},
    "<contract policy>",
)
"""The chain of spec §2: override, org default, derived provider, deployment default."""
