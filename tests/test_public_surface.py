"""What callers may rely on is named in ``llmbilling/__init__.py``; this pins it, so a change
to the public surface is a deliberate edit here too."""

from __future__ import annotations

import llmbilling

PUBLIC_SURFACE = [
    "BillingDecision",
    "BillingMode",
    "CONTRACT_POLICY",
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


def test_the_public_surface_is_exactly_the_pinned_names() -> None:
    assert sorted(llmbilling.__all__) == sorted(PUBLIC_SURFACE)


def test_every_public_name_is_importable_from_the_package() -> None:
    assert all(getattr(llmbilling, name, None) is not None for name in PUBLIC_SURFACE)
