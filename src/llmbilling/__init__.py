"""llmbilling: decide who pays for a workspace's LLM calls, exactly and with reasons.

What callers may rely on is named here; modules behind it may move.
"""

from llmbilling.core.decision import (
    BillingDecision,
    ChainOutcome,
    DecisionError,
    Deployment,
    Derivation,
    OrgDefault,
    OverrideReadFailure,
    ResolutionInput,
    TraceEntry,
)
from llmbilling.core.derivation import DerivationResult, derive_provider
from llmbilling.core.modes import (
    BillingMode,
    DecisionSource,
    DerivationOutcome,
    RungName,
    RungStatus,
)
from llmbilling.core.registry import CompiledRegistry, compile_registry
from llmbilling.core.resolve import resolve_billing_mode
from llmbilling.errors import InvalidInputError, LlmBillingError, RegistryError
from llmbilling.registry_files import built_in_registry, load_registry

__all__ = [
    "BillingDecision",
    "BillingMode",
    "ChainOutcome",
    "CompiledRegistry",
    "DecisionError",
    "DecisionSource",
    "Deployment",
    "Derivation",
    "DerivationOutcome",
    "DerivationResult",
    "InvalidInputError",
    "LlmBillingError",
    "OrgDefault",
    "OverrideReadFailure",
    "RegistryError",
    "ResolutionInput",
    "RungName",
    "RungStatus",
    "TraceEntry",
    "built_in_registry",
    "compile_registry",
    "derive_provider",
    "load_registry",
    "resolve_billing_mode",
]
