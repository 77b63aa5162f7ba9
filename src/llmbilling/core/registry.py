"""The provider registry: its document schema and its compiled, lookup-ready form (spec §3).

Pure: :func:`compile_registry` takes an already-parsed document. Reading files is the job of
:mod:`llmbilling.registry_files`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from llmbilling.core.documents import content_hash, validate_document
from llmbilling.errors import RegistryError

ALL_RUNTIMES = "*"
_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
_ENV_PATTERN = r"^[A-Z_][A-Z0-9_]*$"
EnvName = Annotated[str, StringConstraints(pattern=_ENV_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelRules(_Strict):
    exact: list[str] = Field(default_factory=list)
    alias: list[str] = Field(default_factory=list)
    prefix: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rules_are_not_blank(self) -> ModelRules:
        for kind in ("exact", "alias", "prefix"):
            for index, rule in enumerate(getattr(self, kind)):
                if not rule.strip():
                    raise ValueError(f"{kind}[{index}] is blank")
        return self


class ProxyEnv(_Strict):
    """The env names a runtime reads its endpoint, key and (optionally) extra headers from."""

    base_url: EnvName
    token: EnvName
    attribution_header: EnvName | None = None


class RuntimeSpec(_Strict):
    id: str = Field(pattern=_ID_PATTERN)
    api: Literal["anthropic", "openai"]
    proxy_env: ProxyEnv


class ProviderSpec(_Strict):
    id: str = Field(pattern=_ID_PATTERN)
    name: str = Field(min_length=1)
    platform: bool = False
    auth_env: list[EnvName] = Field(default_factory=list)
    models: dict[str, ModelRules] = Field(default_factory=dict)


class RegistryDocument(_Strict):
    schema_version: Literal[1] = 1
    runtimes: list[RuntimeSpec] = Field(min_length=1)
    providers: list[ProviderSpec] = Field(min_length=1)


class RuleKind(StrEnum):
    EXACT = "exact"
    ALIAS = "alias"
    PREFIX = "prefix"


@dataclass(frozen=True, slots=True)
class Candidate:
    """One provider whose rule matched a model."""

    provider: str
    rule_kind: RuleKind
    rule: str


@dataclass(frozen=True, slots=True)
class RuntimeInfo:
    id: str
    api: Literal["anthropic", "openai"]
    proxy_env: ProxyEnv


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    id: str
    name: str
    platform: bool
    auth_env: frozenset[str]


@dataclass(frozen=True, slots=True)
class RuntimeTable:
    """Everything needed to match a model on one runtime, ``*`` rules merged in.

    ``exact`` holds exact ids and aliases (equally specific); ``prefixes`` is keyed by the
    lowercased prefix and ``prefix_lengths`` lists their distinct lengths, longest first, so a
    lookup probes at most one dict entry per distinct length.
    """

    exact: Mapping[str, tuple[Candidate, ...]]
    prefixes: Mapping[str, tuple[Candidate, ...]]
    prefix_lengths: tuple[int, ...]


@dataclass(frozen=True, slots=True, eq=False)
class CompiledRegistry:
    """A validated registry compiled for lookups. ``version`` is a content hash.

    Compared and hashed by identity: one compiled object per loaded file.
    """

    version: str
    runtimes: Mapping[str, RuntimeInfo]
    providers: Mapping[str, ProviderInfo]
    tables: Mapping[str, RuntimeTable]
    platform_provider: str
    all_auth_env: frozenset[str] = field(default_factory=frozenset)


def compile_registry(document: Mapping[str, Any], source: str) -> CompiledRegistry:
    """Validate a parsed registry document and compile it.

    Raises :class:`RegistryError` naming ``source``, the path inside the document and the problem.
    """
    parsed = validate_document(RegistryDocument, document, source, RegistryError)
    _check_references(parsed, source)
    return _compile(parsed, content_hash(parsed))


def _check_references(parsed: RegistryDocument, source: str) -> None:
    runtime_ids: set[str] = set()
    for index, runtime in enumerate(parsed.runtimes):
        if runtime.id in runtime_ids:
            raise RegistryError(
                source, f"runtimes[{index}].id", f"duplicate runtime {runtime.id!r}"
            )
        runtime_ids.add(runtime.id)
    provider_ids: set[str] = set()
    platform_ids: list[str] = []
    for index, provider in enumerate(parsed.providers):
        if provider.id in provider_ids:
            raise RegistryError(
                source, f"providers[{index}].id", f"duplicate provider {provider.id!r}"
            )
        provider_ids.add(provider.id)
        if provider.platform:
            platform_ids.append(provider.id)
        for runtime_key in provider.models:
            if runtime_key != ALL_RUNTIMES and runtime_key not in runtime_ids:
                raise RegistryError(
                    source,
                    f"providers[{index}].models.{runtime_key}",
                    f"unknown runtime {runtime_key!r} (declared: {', '.join(sorted(runtime_ids))}"
                    f" or {ALL_RUNTIMES!r})",
                )
    if len(platform_ids) != 1:
        raise RegistryError(
            source,
            "providers",
            f"exactly one provider must have 'platform: true' (found {len(platform_ids)})",
        )


def _compile(parsed: RegistryDocument, version: str) -> CompiledRegistry:
    runtimes = {
        r.id: RuntimeInfo(id=r.id, api=r.api, proxy_env=r.proxy_env) for r in parsed.runtimes
    }
    providers = {
        p.id: ProviderInfo(
            id=p.id, name=p.name, platform=p.platform, auth_env=frozenset(p.auth_env)
        )
        for p in parsed.providers
    }
    tables = {runtime_id: _build_table(parsed.providers, runtime_id) for runtime_id in runtimes}
    platform_provider = next(p.id for p in parsed.providers if p.platform)
    all_auth_env = frozenset(name for p in parsed.providers for name in p.auth_env)
    return CompiledRegistry(
        version=version,
        runtimes=runtimes,
        providers=providers,
        tables=tables,
        platform_provider=platform_provider,
        all_auth_env=all_auth_env,
    )


def _build_table(providers: list[ProviderSpec], runtime_id: str) -> RuntimeTable:
    exact: dict[str, dict[str, Candidate]] = {}
    prefixes: dict[str, dict[str, Candidate]] = {}
    for provider in providers:
        for runtime_key in (ALL_RUNTIMES, runtime_id):
            rules = provider.models.get(runtime_key)
            if rules is None:
                continue
            for kind, patterns, target in (
                (RuleKind.EXACT, rules.exact, exact),
                (RuleKind.ALIAS, rules.alias, exact),
                (RuleKind.PREFIX, rules.prefix, prefixes),
            ):
                for pattern in patterns:
                    key = pattern.strip().lower()
                    # First rule per (key, provider) wins: a provider listed twice for the
                    # same key is still one candidate.
                    target.setdefault(key, {}).setdefault(
                        provider.id, Candidate(provider.id, kind, pattern.strip())
                    )
    return RuntimeTable(
        exact={key: _sorted(found) for key, found in exact.items()},
        prefixes={key: _sorted(found) for key, found in prefixes.items()},
        prefix_lengths=tuple(sorted({len(key) for key in prefixes}, reverse=True)),
    )


def _sorted(found: dict[str, Candidate]) -> tuple[Candidate, ...]:
    return tuple(found[provider_id] for provider_id in sorted(found))
