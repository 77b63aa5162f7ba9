"""llmbilling: decide who pays for a workspace's LLM calls, exactly and with reasons.

What callers may rely on is named here; modules behind it may move.
"""

from llmbilling.config.policy import load_policy
from llmbilling.config.registry import built_in_registry, load_registry
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
    Versions,
)
from llmbilling.core.derivation import DerivationResult, derive_provider
from llmbilling.core.modes import (
    BillingMode,
    DecisionSource,
    DerivationOutcome,
    RungName,
    RungStatus,
)
from llmbilling.core.policy import CONTRACT_POLICY, CompiledPolicy, compile_policy
from llmbilling.core.provisioning import (
    ProvisionEnv,
    ProxySettings,
    build_provision_env,
    effective_model,
)
from llmbilling.core.registry import CompiledRegistry, compile_registry
from llmbilling.core.resolve import resolve_billing_mode
from llmbilling.core.secrets import SecretScope, SecretValue, merge_secret_scopes
from llmbilling.errors import (
    DocumentError,
    ErrorCode,
    InvalidInputError,
    LlmBillingError,
    MissingByokCredentialError,
    MissingModelError,
    MissingPlatformProxyError,
    PolicyError,
    ProvisionError,
    RegistryError,
)

__all__ = [
    "CONTRACT_POLICY",
    "BillingDecision",
    "BillingMode",
    "ChainOutcome",
    "CompiledPolicy",
    "CompiledRegistry",
    "DecisionError",
    "DecisionSource",
    "Deployment",
    "Derivation",
    "DerivationOutcome",
    "DerivationResult",
    "DocumentError",
    "ErrorCode",
    "InvalidInputError",
    "LlmBillingError",
    "MissingByokCredentialError",
    "MissingModelError",
    "MissingPlatformProxyError",
    "OrgDefault",
    "OverrideReadFailure",
    "PolicyError",
    "ProvisionEnv",
    "ProvisionError",
    "ProxySettings",
    "RegistryError",
    "ResolutionInput",
    "RungName",
    "RungStatus",
    "SecretScope",
    "SecretValue",
    "TraceEntry",
    "Versions",
    "build_provision_env",
    "built_in_registry",
    "compile_policy",
    "compile_registry",
    "derive_provider",
    "effective_model",
    "load_policy",
    "load_registry",
    "merge_secret_scopes",
    "resolve_billing_mode",
]
