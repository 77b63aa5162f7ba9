"""The provider registry: its document schema and its compiled, lookup-ready form (spec §3).

A provider declares its credential names, its endpoint names and, optionally, a ``pattern``
(the original system's anchored regex, held as exact ids and prefixes). A runtime lists its
native providers in order, each with the ids that runtime adds for it. A provider's pattern
applies on the runtimes that list it, so one id may mean different things on different
runtimes; the platform provider alone is native on every runtime (``platform/…`` is the
platform everywhere).

Pure: :func:`compile_registry` takes an already-parsed document. Reading files is the job of
:mod:`llmbilling.config.registry`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from llmbilling.core.documents import (
    content_hash,
    quoted,
    shortened,
    validate_document,
)
from llmbilling.core.patterns import PatternError, expand_pattern
from llmbilling.errors import RegistryError

_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
_ENV_PATTERN = r"^[A-Z_][A-Z0-9_]*$"
EnvName = Annotated[str, StringConstraints(pattern=_ENV_PATTERN)]
RuleText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProxyEnv(_Strict):
    """The env names a runtime reads its endpoint, key and (optionally) extra headers from."""

    base_url: EnvName
    token: EnvName
    attribution_header: EnvName | None = None


class NativeProvider(_Strict):
    """One provider a runtime lists, with the ids this runtime adds for it (may be none)."""

    provider: str = Field(pattern=_ID_PATTERN)
    exact: list[RuleText] = Field(default_factory=list)
    alias: list[RuleText] = Field(default_factory=list)
    prefix: list[RuleText] = Field(default_factory=list)


class RuntimeSpec(_Strict):
    id: str = Field(pattern=_ID_PATTERN)
    api: Literal["anthropic", "openai"]
    proxy_env: ProxyEnv
    providers: list[NativeProvider] = Field(default_factory=list)


class ProviderSpec(_Strict):
    id: str = Field(pattern=_ID_PATTERN)
    name: str = Field(min_length=1)
    platform: bool = False
    auth_env: list[EnvName] = Field(min_length=1)
    endpoint_env: list[EnvName] = Field(default_factory=list)
    pattern: str | None = None

    @field_validator("pattern")
    @classmethod
    def _pattern_is_expressible(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                expand_pattern(pattern)
            except PatternError as exc:
                raise ValueError(
                    f"pattern {quoted(pattern)} cannot be expressed as exact/alias/prefix"
                    f" rules: {exc}"
                ) from None
        return pattern


class RegistryDocument(_Strict):
    schema_version: Literal[2]
    providers: list[ProviderSpec] = Field(min_length=1)
    runtimes: list[RuntimeSpec] = Field(min_length=1)


class RuleKind(StrEnum):
    EXACT = "exact"
    ALIAS = "alias"
    PREFIX = "prefix"


@dataclass(frozen=True, slots=True, order=True)
class Rule:
    """One compiled rule: its kind and its lowercased text."""

    kind: RuleKind
    text: str


@dataclass(frozen=True, slots=True)
class Candidate:
    """One provider whose rule matched a model."""

    provider: str
    rule_kind: RuleKind
    rule: str


@dataclass(frozen=True, slots=True)
class Match:
    """The most specific candidates for one lookup key, in the runtime's declared order.

    ``order_breaks_ties``: when credentials do not single out one candidate, the first declared
    wins. Only for exact ids: one model reachable two ways on a runtime that prefers one of
    them. An alias or a prefix names a family, and a tie there stays ambiguous.
    """

    candidates: tuple[Candidate, ...]
    order_breaks_ties: bool


@dataclass(frozen=True, slots=True)
class RuntimeInfo:
    id: str
    api: Literal["anthropic", "openai"]
    proxy_env: ProxyEnv
    native_providers: tuple[str, ...]
    """Declared order; the platform provider is appended when the runtime does not list it."""


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    id: str
    name: str
    platform: bool
    auth_env: frozenset[str]
    endpoint_env: frozenset[str]
    pattern: str | None


@dataclass(frozen=True, slots=True)
class RuntimeTable:
    """Everything needed to match a model on one runtime.

    ``exact`` holds exact ids and aliases (equally specific); ``prefixes`` is keyed by the
    lowercased prefix and ``prefix_lengths`` lists their distinct lengths, longest first, so a
    lookup probes at most one dict entry per distinct length.
    """

    exact: Mapping[str, Match]
    prefixes: Mapping[str, Match]
    prefix_lengths: tuple[int, ...]


@dataclass(frozen=True, slots=True, eq=False)
class CompiledRegistry:
    """A validated registry compiled for lookups. ``version`` is a content hash.

    ``rules`` holds, per runtime and provider, every rule that applies there (the runtime's own
    ids and the provider's pattern). Compared and hashed by identity: one compiled object per
    loaded file.
    """

    version: str
    document: RegistryDocument
    runtimes: Mapping[str, RuntimeInfo]
    providers: Mapping[str, ProviderInfo]
    tables: Mapping[str, RuntimeTable]
    rules: Mapping[str, Mapping[str, frozenset[Rule]]]
    platform_provider: str
    all_auth_env: frozenset[str]
    """Every provider's credential names, the platform's included."""
    vendor_auth_env: frozenset[str]
    """Every vendor (non-platform) provider's credential names."""
    all_endpoint_env: frozenset[str]
    """Every provider's endpoint names (base-URL variables)."""

    def to_document(self) -> dict[str, Any]:
        """The registry as a plain document; compiling it again gives the same version."""
        return self.document.model_dump(mode="json", exclude_defaults=True)


def compile_registry(document: Mapping[str, Any], source: str) -> CompiledRegistry:
    """Validate a parsed registry document and compile it.

    Raises :class:`RegistryError` naming ``source``, the path inside the document and the problem.
    """
    parsed = validate_document(RegistryDocument, document, source, RegistryError)
    _check_references(parsed, source)
    return _compile(parsed, content_hash(parsed))


def _check_references(parsed: RegistryDocument, source: str) -> None:
    provider_ids: dict[str, int] = {}
    platform_at: int | None = None
    for index, provider in enumerate(parsed.providers):
        if provider.id in provider_ids:
            raise RegistryError(
                source, f"providers[{index}].id", f"duplicate provider {quoted(provider.id)}"
            )
        provider_ids[provider.id] = index
        if provider.platform:
            if platform_at is not None:
                raise RegistryError(
                    source,
                    f"providers[{index}].platform",
                    f"a second platform provider: {quoted(parsed.providers[platform_at].id)}"
                    f" (providers[{platform_at}]) already has 'platform: true'",
                )
            platform_at = index
    if platform_at is None:
        raise RegistryError(
            source, "providers", "no provider has 'platform: true' (exactly one must)"
        )
    runtime_ids: set[str] = set()
    for index, runtime in enumerate(parsed.runtimes):
        if runtime.id in runtime_ids:
            raise RegistryError(
                source, f"runtimes[{index}].id", f"duplicate runtime {quoted(runtime.id)}"
            )
        runtime_ids.add(runtime.id)
        listed: dict[str, int] = {}
        for position, native in enumerate(runtime.providers):
            where = f"runtimes[{index}].providers[{position}].provider"
            if native.provider not in provider_ids:
                raise RegistryError(
                    source,
                    where,
                    f"unknown provider {quoted(native.provider)}"
                    f" (declared: {shortened(', '.join(sorted(provider_ids)))})",
                )
            if native.provider in listed:
                raise RegistryError(
                    source,
                    where,
                    f"provider {quoted(native.provider)} is listed twice on runtime"
                    f" {quoted(runtime.id)}"
                    f" (first at providers[{listed[native.provider]}])",
                )
            listed[native.provider] = position


def _compile(parsed: RegistryDocument, version: str) -> CompiledRegistry:
    specs = {p.id: p for p in parsed.providers}
    platform_provider = next(p.id for p in parsed.providers if p.platform)
    providers = {
        p.id: ProviderInfo(
            id=p.id,
            name=p.name,
            platform=p.platform,
            auth_env=frozenset(p.auth_env),
            endpoint_env=frozenset(p.endpoint_env),
            pattern=p.pattern,
        )
        for p in parsed.providers
    }
    runtimes: dict[str, RuntimeInfo] = {}
    tables: dict[str, RuntimeTable] = {}
    rules: dict[str, dict[str, frozenset[Rule]]] = {}
    for runtime in parsed.runtimes:
        natives = list(runtime.providers)
        if all(native.provider != platform_provider for native in natives):
            natives.append(NativeProvider(provider=platform_provider))
        runtimes[runtime.id] = RuntimeInfo(
            id=runtime.id,
            api=runtime.api,
            proxy_env=runtime.proxy_env,
            native_providers=tuple(native.provider for native in natives),
        )
        per_provider = {
            native.provider: _rules_of(native, specs[native.provider]) for native in natives
        }
        rules[runtime.id] = {provider: frozenset(found) for provider, found in per_provider.items()}
        tables[runtime.id] = _build_table(per_provider)
    return CompiledRegistry(
        version=version,
        document=parsed,
        runtimes=runtimes,
        providers=providers,
        tables=tables,
        rules=rules,
        platform_provider=platform_provider,
        all_auth_env=frozenset(name for p in parsed.providers for name in p.auth_env),
        vendor_auth_env=frozenset(
            name for p in parsed.providers if not p.platform for name in p.auth_env
        ),
        all_endpoint_env=frozenset(name for p in parsed.providers for name in p.endpoint_env),
    )


def _rules_of(native: NativeProvider, provider: ProviderSpec) -> dict[Rule, str]:
    """The rules of ``provider`` on one runtime, each with its text as written: the runtime's
    own first (an alias stays an alias though the pattern also names the id), then the
    pattern's."""
    found: dict[str, tuple[Rule, str]] = {}
    written = [
        (RuleKind.ALIAS, native.alias),
        (RuleKind.EXACT, native.exact),
        (RuleKind.PREFIX, native.prefix),
    ]
    if provider.pattern is not None:
        expanded = expand_pattern(provider.pattern)
        written += [
            (RuleKind.EXACT, list(expanded.exact)),
            (RuleKind.PREFIX, list(expanded.prefix)),
        ]
    for kind, texts in written:
        for text in texts:
            rule = Rule(kind, text.lower())
            # Exact ids and aliases share one lookup table, prefixes have their own.
            slot = ("prefix:" if kind is RuleKind.PREFIX else "id:") + rule.text
            found.setdefault(slot, (rule, text))
    return dict(found.values())


def _build_table(per_provider: Mapping[str, Mapping[Rule, str]]) -> RuntimeTable:
    exact: dict[str, list[Candidate]] = {}
    prefixes: dict[str, list[Candidate]] = {}
    for provider, found in per_provider.items():  # declared order
        for rule, text in found.items():
            target = prefixes if rule.kind is RuleKind.PREFIX else exact
            target.setdefault(rule.text, []).append(Candidate(provider, rule.kind, text))
    return RuntimeTable(
        exact={key: _match(found) for key, found in exact.items()},
        prefixes={key: _match(found) for key, found in prefixes.items()},
        prefix_lengths=tuple(sorted({len(key) for key in prefixes}, reverse=True)),
    )


def _match(found: list[Candidate]) -> Match:
    return Match(tuple(found), order_breaks_ties=all(c.rule_kind is RuleKind.EXACT for c in found))
