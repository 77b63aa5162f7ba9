"""The env a workspace's container starts with, given its billing decision (spec §4). Pure.

The storage/service layer reads the secrets and the deployment's settings and calls
:func:`build_provision_env`; nothing here reads the environment, a store or a clock. Secret
values pass through into :attr:`ProvisionEnv.env` and nowhere else: every ``repr``, summary and
error message in this module names env vars, never their values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from urllib.parse import urlsplit, urlunsplit

from llmbilling.core.decision import BillingDecision, Provisioning, ProvisioningStatus
from llmbilling.core.modes import BillingMode, DecisionSource
from llmbilling.core.registry import CompiledRegistry, ProviderInfo, ProxyEnv
from llmbilling.core.secrets import SecretScope, SecretValue
from llmbilling.errors import (
    InvalidInputError,
    MissingByokCredentialError,
    MissingModelError,
    MissingPlatformProxyError,
    ProvisionError,
)

CLAUDE_CODE_OAUTH_TOKEN = "CLAUDE_CODE_OAUTH_TOKEN"

# The MOLECULE_LLM_ namespace belongs to the platform: a tenant's secret of that name never
# reaches the container, so a tenant cannot redirect the proxy or fake the exported decision.
PLATFORM_ENV_PREFIX = "MOLECULE_LLM_"
PROXY_BASE_URL_ENV = "MOLECULE_LLM_BASE_URL"
PROXY_USAGE_TOKEN_ENV = "MOLECULE_LLM_USAGE_TOKEN"
PROXY_ANTHROPIC_BASE_URL_ENV = "MOLECULE_LLM_ANTHROPIC_BASE_URL"
PROXY_USAGE_URL_ENV = "MOLECULE_LLM_USAGE_URL"
BILLING_MODE_ENV = "MOLECULE_LLM_BILLING_MODE"
BILLING_MODE_RESOLVED_ENV = "MOLECULE_LLM_BILLING_MODE_RESOLVED"
BILLING_SOURCE_ENV = "MOLECULE_LLM_BILLING_SOURCE"
MOLECULE_MODEL_ENV = "MOLECULE_MODEL"
MODEL_ENV = "MODEL"
WORKSPACE_ID_HEADER = "X-Molecule-Workspace-Id"

# A runtime the registry does not know is pointed at the proxy through the OpenAI-compatible
# names, which is what almost every harness reads.
FALLBACK_PROXY_ENV = ProxyEnv(base_url="OPENAI_BASE_URL", token="OPENAI_API_KEY")

# Deployment settings each proxy setting is read from, first present wins (spec §4).
_BASE_URL_SOURCES = (PROXY_BASE_URL_ENV, "OPENAI_BASE_URL")
_USAGE_TOKEN_SOURCES = (PROXY_USAGE_TOKEN_ENV, "OPENAI_API_KEY")
_ANTHROPIC_BASE_URL_SOURCES = (PROXY_ANTHROPIC_BASE_URL_ENV, "ANTHROPIC_BASE_URL")
_USAGE_URL_SOURCES = (PROXY_USAGE_URL_ENV,)
BASE_URL_SETTING = "base URL"
USAGE_TOKEN_SETTING = "usage token"
# Where each proxy setting is read from, named in MissingPlatformProxyError's message.
_SETTING_SOURCES: dict[str, tuple[str, ...]] = {
    BASE_URL_SETTING: _BASE_URL_SOURCES,
    USAGE_TOKEN_SETTING: _USAGE_TOKEN_SOURCES,
}


def _text(value: str | None) -> str | None:
    """The stripped text, or None when absent or blank."""
    if value is None:
        return None
    stripped = value.strip()
    return stripped or None


def _first_present(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        found = _text(env.get(name))
        if found is not None:
            return found
    return None


def _redact_url(url: str | None) -> str | None:
    """``url`` without user info or query, which may carry credentials."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "<redacted>@" + netloc.rpartition("@")[2]
    query = "<redacted>" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


# --- The deployment's metering proxy ---------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class ProxySettings:
    """The deployment's metering proxy. ``repr`` never shows the usage token.

    Values are used stripped; blank counts as absent.
    """

    base_url: str | None = None
    usage_token: str | None = field(default=None, repr=False)
    anthropic_base_url: str | None = None
    usage_url: str | None = None

    def __repr__(self) -> str:
        token = "<redacted>" if _text(self.usage_token) else "<unset>"
        return (
            f"ProxySettings(base_url={_redact_url(self.base_url)!r}, usage_token={token},"
            f" anthropic_base_url={_redact_url(self.anthropic_base_url)!r},"
            f" usage_url={_redact_url(self.usage_url)!r})"
        )

    @property
    def configured(self) -> bool:
        """Both the base URL and the usage token are non-blank (spec §1 "proxy configured")."""
        return not self.missing

    @property
    def missing(self) -> tuple[str, ...]:
        """Which of ``"base URL"`` and ``"usage token"`` are absent or blank, in that order."""
        missing: list[str] = []
        if _text(self.base_url) is None:
            missing.append(BASE_URL_SETTING)
        if _text(self.usage_token) is None:
            missing.append(USAGE_TOKEN_SETTING)
        return tuple(missing)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ProxySettings:
        """Read the proxy settings from the DEPLOYMENT's env or settings, never a tenant's secrets.

        Base URL: ``MOLECULE_LLM_BASE_URL``, else ``OPENAI_BASE_URL``. Usage token:
        ``MOLECULE_LLM_USAGE_TOKEN``, else ``OPENAI_API_KEY``. Anthropic base URL:
        ``MOLECULE_LLM_ANTHROPIC_BASE_URL``, else ``ANTHROPIC_BASE_URL``. Usage URL:
        ``MOLECULE_LLM_USAGE_URL``. A blank value counts as absent; values are stripped.
        """
        return cls(
            base_url=_first_present(env, _BASE_URL_SOURCES),
            usage_token=_first_present(env, _USAGE_TOKEN_SOURCES),
            anthropic_base_url=_first_present(env, _ANTHROPIC_BASE_URL_SOURCES),
            usage_url=_first_present(env, _USAGE_URL_SOURCES),
        )


# --- The effective model ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EffectiveModel:
    """The effective model and where it came from: ``"request"``, ``"model column"``, or a
    secret's name and scope (``"MOLECULE_MODEL (workspace scope)"``); both None when there is
    no model at all."""

    model: str | None
    origin: str | None


_NO_MODEL_FOUND = EffectiveModel(None, None)


def effective_model_origin(
    request_model: str | None,
    stored_model: str | None,
    merged_env: Mapping[str, SecretValue],
) -> EffectiveModel:
    """:func:`effective_model`, with where it came from (the same rule: it is that rule)."""
    for candidate, origin in ((request_model, "request"), (stored_model, "model column")):
        found = _text(candidate)
        if found is not None:
            return EffectiveModel(found, origin)
    for name in (MOLECULE_MODEL_ENV, MODEL_ENV):
        secret = merged_env.get(name)
        found = None if secret is None else _text(secret.value)
        if secret is not None and found is not None:
            return EffectiveModel(found, f"{name} ({secret.scope.value} scope)")
    return _NO_MODEL_FOUND


def effective_model(
    request_model: str | None,
    stored_model: str | None,
    merged_env: Mapping[str, SecretValue],
) -> str | None:
    """The model the container will run, so the decision and the container agree.

    The request's model, else the workspace's stored model, else ``MOLECULE_MODEL``, else
    ``MODEL`` from the merged env. Blank values count as absent. Returns the stripped text, or
    None when there is no model at all (the caller then raises :class:`MissingModelError`).
    """
    return effective_model_origin(request_model, stored_model, merged_env).model


# --- The result ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class ProvisionEnv:
    """The env to start a container with, and why.

    ``env`` holds secret VALUES and is read-only; ``repr``/``str`` and :meth:`public_summary`
    show env names only. ``stripped`` (sorted) and ``foreign_credentials_kept`` (sorted) are
    names from the merged env; ``warnings`` explain each foreign credential kept.
    """

    env: Mapping[str, str] = field(repr=False)
    decision: BillingDecision
    model: str
    foreign_credentials_kept: tuple[str, ...]
    stripped: tuple[str, ...]
    warnings: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return (
            f"ProvisionEnv(mode={self.decision.mode.value!r},"
            f" source={self.decision.source.value!r}, provider={self.decision.provider!r},"
            f" model={self.model!r}, env_names={tuple(sorted(self.env))!r},"
            f" stripped={self.stripped!r},"
            f" foreign_credentials_kept={self.foreign_credentials_kept!r})"
        )

    def public_summary(self) -> dict[str, object]:
        """Everything but values, in plain JSON types: safe to log and to return."""
        error = self.decision.error
        return {
            "workspace_id": self.decision.workspace_id,
            "mode": self.decision.mode.value,
            "source": self.decision.source.value,
            "provider": self.decision.provider,
            "model": self.model,
            "env_names": sorted(self.env),
            "stripped": list(self.stripped),
            "foreign_credentials_kept": list(self.foreign_credentials_kept),
            "warnings": list(self.warnings),
            "decision_error": None if error is None else {"code": error.code.value},
        }


# --- The verdict, judged by names -------------------------------------------------------------

PROVISIONING_OK = Provisioning(ProvisioningStatus.OK)
_NO_MODEL = Provisioning(ProvisioningStatus.MISSING_MODEL)
_NO_PROXY = Provisioning(ProvisioningStatus.MISSING_PLATFORM_PROXY)
_NO_REGISTRY = Provisioning(ProvisioningStatus.REGISTRY_UNAVAILABLE)
PROVISIONING_UNKNOWN = Provisioning(ProvisioningStatus.UNKNOWN)


def judge_provisioning(
    mode: BillingMode,
    source: DecisionSource,
    provider: str | None,
    *,
    model_present: bool,
    credential_names: frozenset[str],
    proxy_configured: bool,
    registry: CompiledRegistry | None,
) -> Provisioning:
    """What :func:`build_provision_env` would do with a decision of ``mode``/``source``/
    ``provider``: ok, or the code of the error it raises, checked in its order (registry,
    model, then the mode's own need). ``credential_names`` are the non-blank secret names
    present (names only: nothing is decrypted). Provisioning raises from this very verdict,
    so the two cannot disagree.
    """
    if registry is None:
        return _NO_REGISTRY
    if not model_present:
        return _NO_MODEL
    if mode is BillingMode.PLATFORM_MANAGED:
        return PROVISIONING_OK if proxy_configured else _NO_PROXY
    if mode is BillingMode.BYOK:
        gap = byok_credential_gap(
            derived_vendor(source, provider, registry), credential_names, registry
        )
        if gap is not None:
            return Provisioning(
                ProvisioningStatus.MISSING_BYOK_CREDENTIAL, gap.provider, gap.satisfying_env
            )
    return PROVISIONING_OK


def provisioning_error(
    verdict: Provisioning, *, workspace_id: str, proxy: ProxySettings
) -> ProvisionError | None:
    """The error a failing ``verdict`` stands for (None when it is ok); ``proxy`` supplies the
    missing settings a ``MISSING_PLATFORM_PROXY`` message names."""
    match verdict.status:
        case ProvisioningStatus.OK:
            return None
        case ProvisioningStatus.MISSING_MODEL:
            return MissingModelError(workspace_id)
        case ProvisioningStatus.MISSING_PLATFORM_PROXY:
            return MissingPlatformProxyError(
                {name: _SETTING_SOURCES[name] for name in proxy.missing}
            )
        case ProvisioningStatus.MISSING_BYOK_CREDENTIAL:
            return MissingByokCredentialError(verdict.provider, verdict.satisfied_by)
        case _:  # pragma: no cover - build_provision_env is always given a registry
            raise AssertionError(f"no provisioning error for {verdict.status}")


# --- Building the env ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ReservedNames:
    """Env names a registry makes special; computed once per compiled registry."""

    credentials: frozenset[str]
    """Every registry provider's auth env, and ``CLAUDE_CODE_OAUTH_TOKEN``."""
    endpoints: frozenset[str]
    """Every registry provider's endpoint env (base-URL variables)."""
    runtime_proxy: frozenset[str]
    """Every runtime's proxy env names, and the OpenAI-compatible fallback's."""
    attribution_headers: frozenset[str]

    @property
    def llm_access(self) -> frozenset[str]:
        """What the platform and disabled paths strip: every way to reach a vendor."""
        return self.credentials | self.endpoints | self.runtime_proxy


@lru_cache(maxsize=8)
def _reserved_names(registry: CompiledRegistry) -> _ReservedNames:
    proxy_envs = [runtime.proxy_env for runtime in registry.runtimes.values()]
    proxy_envs.append(FALLBACK_PROXY_ENV)
    headers = frozenset(p.attribution_header for p in proxy_envs if p.attribution_header)
    return _ReservedNames(
        credentials=registry.all_auth_env | {CLAUDE_CODE_OAUTH_TOKEN},
        endpoints=registry.all_endpoint_env,
        runtime_proxy=frozenset(name for p in proxy_envs for name in (p.base_url, p.token))
        | headers,
        attribution_headers=headers,
    )


@dataclass(frozen=True, slots=True)
class _EnvPlan:
    """What one mode does to the merged env: names to strip, then values to inject."""

    strip: frozenset[str]
    inject: Mapping[str, str] = field(default_factory=dict)
    foreign_credentials_kept: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def build_provision_env(
    decision: BillingDecision,
    *,
    workspace_id: str,
    runtime: str,
    model: str,
    merged_env: Mapping[str, SecretValue],
    proxy: ProxySettings,
    registry: CompiledRegistry,
) -> ProvisionEnv:
    """Build the container env for ``decision`` (spec §4).

    ``model`` is the effective model (see :func:`effective_model`); it is exported stripped as
    ``MOLECULE_MODEL`` and ``MODEL``. ``MOLECULE_LLM_BILLING_MODE``,
    ``MOLECULE_LLM_BILLING_MODE_RESOLVED`` and ``MOLECULE_LLM_BILLING_SOURCE`` are always
    exported. Tenant secrets named ``MOLECULE_LLM_*`` are always stripped.

    - ``platform_managed``: every registry credential and endpoint and every runtime's proxy
      env is stripped, then the proxy env is injected. A runtime not in the registry is pointed
      at the proxy through ``OPENAI_BASE_URL``/``OPENAI_API_KEY``.
    - ``byok``: attribution headers and blank credentials are stripped. With a derived vendor
      provider, org-scope credentials and endpoints of other providers are stripped and
      workspace-scope ones kept with a warning.
    - ``disabled``: every registry credential and endpoint and all proxy env are stripped.

    Raises :class:`MissingModelError`, :class:`MissingPlatformProxyError`,
    :class:`MissingByokCredentialError`, or :class:`InvalidInputError` when ``workspace_id`` is
    blank, holds white space or control characters, or differs from the decision's.
    """
    model_text = _text(model)
    names = _reserved_names(registry)
    present = frozenset(
        name
        for name, secret in merged_env.items()
        if name in names.credentials and not secret.is_blank
    )
    verdict = judge_provisioning(
        decision.mode,
        decision.source,
        decision.provider,
        model_present=model_text is not None,
        credential_names=present,
        proxy_configured=proxy.configured,
        registry=registry,
    )
    if model_text is None:
        raise MissingModelError(workspace_id or decision.workspace_id)
    _check_workspace_id(workspace_id, decision)
    error = provisioning_error(verdict, workspace_id=workspace_id, proxy=proxy)
    if error is not None:
        raise error
    match decision.mode:
        case BillingMode.PLATFORM_MANAGED:
            plan = _platform_managed_plan(names, registry, runtime, workspace_id, proxy)
        case BillingMode.BYOK:
            plan = _byok_plan(names, registry, decision, merged_env, present)
        case BillingMode.DISABLED:
            plan = _EnvPlan(strip=names.llm_access)

    env = {
        name: secret.value
        for name, secret in merged_env.items()
        if name not in plan.strip and not name.startswith(PLATFORM_ENV_PREFIX)
    }
    stripped = tuple(sorted(name for name in merged_env if name not in env))
    env.update(plan.inject)
    env.update(
        {
            MOLECULE_MODEL_ENV: model_text,
            MODEL_ENV: model_text,
            BILLING_MODE_ENV: decision.mode.value,
            BILLING_MODE_RESOLVED_ENV: decision.mode.value,
            BILLING_SOURCE_ENV: decision.source.value,
        }
    )
    return ProvisionEnv(
        env=MappingProxyType(dict(sorted(env.items()))),
        decision=decision,
        model=model_text,
        foreign_credentials_kept=plan.foreign_credentials_kept,
        stripped=stripped,
        warnings=plan.warnings,
    )


def _check_workspace_id(workspace_id: str, decision: BillingDecision) -> None:
    # The id goes into a header line the proxy attributes usage by; a blank or multi-line id
    # would bill the wrong workspace or inject headers.
    if not workspace_id or any(ch.isspace() or not ch.isprintable() for ch in workspace_id):
        raise InvalidInputError(
            "workspace_id", "must be non-empty, without white space or control characters"
        )
    if decision.workspace_id and decision.workspace_id != workspace_id:
        raise InvalidInputError(
            "workspace_id", "differs from the workspace id the decision was made for"
        )


def _platform_managed_plan(
    names: _ReservedNames,
    registry: CompiledRegistry,
    runtime: str,
    workspace_id: str,
    proxy: ProxySettings,
) -> _EnvPlan:
    base_url = _text(proxy.base_url)
    usage_token = _text(proxy.usage_token)
    # judge_provisioning refused an unconfigured proxy before any plan is made.
    assert base_url is not None
    assert usage_token is not None
    anthropic_base_url = _text(proxy.anthropic_base_url)
    usage_url = _text(proxy.usage_url)
    inject = {PROXY_BASE_URL_ENV: base_url, PROXY_USAGE_TOKEN_ENV: usage_token}
    if anthropic_base_url is not None:
        inject[PROXY_ANTHROPIC_BASE_URL_ENV] = anthropic_base_url
    if usage_url is not None:
        inject[PROXY_USAGE_URL_ENV] = usage_url

    runtime_info = registry.runtimes.get(runtime.strip().lower())
    if runtime_info is None:
        proxy_env, speaks_anthropic = FALLBACK_PROXY_ENV, False
    else:
        proxy_env, speaks_anthropic = runtime_info.proxy_env, runtime_info.api == "anthropic"
    inject[proxy_env.base_url] = (anthropic_base_url or base_url) if speaks_anthropic else base_url
    inject[proxy_env.token] = usage_token
    if proxy_env.attribution_header:
        inject[proxy_env.attribution_header] = f"{WORKSPACE_ID_HEADER}: {workspace_id}"
    return _EnvPlan(strip=names.llm_access, inject=inject)


def _byok_plan(
    names: _ReservedNames,
    registry: CompiledRegistry,
    decision: BillingDecision,
    merged_env: Mapping[str, SecretValue],
    present: frozenset[str],
) -> _EnvPlan:
    """``present``: the non-blank credential names (judge_provisioning found one needed)."""
    blank = frozenset(
        name for name, secret in merged_env.items() if name in names.credentials and secret.is_blank
    )
    strip = names.attribution_headers | blank

    provider = derived_vendor(decision.source, decision.provider, registry)
    if provider is None:
        return _EnvPlan(strip=strip)
    # Another provider's credential or endpoint would let a greedy runtime route the model to
    # the wrong vendor: the org's are stripped, the workspace's kept (set on purpose) and named.
    own = provider.auth_env | provider.endpoint_env
    foreign = {
        name
        for name in (present | (merged_env.keys() & names.endpoints)) - own
        if not name.startswith(PLATFORM_ENV_PREFIX)
    }
    org_foreign = frozenset(n for n in foreign if merged_env[n].scope is SecretScope.ORG)
    kept = tuple(sorted(foreign - org_foreign))
    warnings = tuple(
        f"{name} is a workspace-scope {_kind(name, names)} that does not belong to provider"
        f" {provider.id!r}; kept because the workspace set it, but the runtime may prefer it"
        for name in kept
    )
    return _EnvPlan(strip=strip | org_foreign, foreign_credentials_kept=kept, warnings=warnings)


def _kind(name: str, names: _ReservedNames) -> str:
    return "credential" if name in names.credentials else "endpoint"


def derived_vendor(
    source: DecisionSource, provider: str | None, registry: CompiledRegistry
) -> ProviderInfo | None:
    """The vendor provider a decision derived, or None.

    Checks the source, not just the provider field: on a failed derivation that field holds
    the raw model, which may happen to spell a provider id (e.g. ``deepseek``).
    """
    if source is not DecisionSource.DERIVED_PROVIDER or provider is None:
        return None
    info = registry.providers.get(provider)
    if info is None or info.platform:
        return None
    return info


def byok_credential_gap(
    provider: ProviderInfo | None, present: frozenset[str], registry: CompiledRegistry
) -> MissingByokCredentialError | None:
    """The error a byok provision would fail with given the credential names ``present``.

    With a derived vendor, one of its auth env names must be present; without one, a
    credential of any vendor provider will do.
    """
    if not byok_credential_missing(provider, present, registry):
        return None
    if provider is None:
        return MissingByokCredentialError(None, tuple(sorted(registry.vendor_auth_env)))
    return MissingByokCredentialError(provider.id, tuple(sorted(provider.auth_env)))


def byok_credential_missing(
    provider: ProviderInfo | None, present: frozenset[str], registry: CompiledRegistry
) -> bool:
    """Whether :func:`byok_credential_gap` would report a gap (cheap: no error is built)."""
    needed = registry.vendor_auth_env if provider is None else provider.auth_env
    return not present & needed
