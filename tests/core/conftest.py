"""Registries shared by the core tests: the built-in one and small hand-written ones."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from llmbilling.config.registry import built_in_registry
from llmbilling.core.registry import CompiledRegistry, compile_registry

RegistryFactory = Callable[..., CompiledRegistry]

TEST_RUNTIME = "rt"

_PLATFORM_PROVIDER: dict[str, Any] = {
    "id": "platform",
    "name": "Platform",
    "platform": True,
    "auth_env": ["PLATFORM_TOKEN"],
    "pattern": "^platform/",
}

# One rule of each specificity, each owned by a different provider, so a derivation names
# which rule won: `acme-pro-max` is exact, `acme-pro-` the longer prefix, `acme-` the shorter.
SPECIFICITY_PROVIDERS: list[dict[str, Any]] = [
    {"id": "broad", "name": "Broad prefix", "auth_env": ["BROAD_KEY"], "pattern": "^acme-"},
    {
        "id": "narrow",
        "name": "Narrow prefix",
        "auth_env": ["NARROW_KEY"],
        "rules": {"prefix": ["acme-pro-"]},
    },
    {
        "id": "exacting",
        "name": "Exact id",
        "auth_env": ["EXACT_KEY"],
        "rules": {"exact": ["acme-pro-max"]},
    },
]


def registry_document(providers: list[dict[str, Any]]) -> dict[str, Any]:
    """A valid registry document: one OpenAI-style runtime `rt` listing the platform and then
    ``providers`` in order. A provider's ``rules`` (exact, alias, prefix) are its ids on `rt`."""
    specs = [copy.deepcopy(_PLATFORM_PROVIDER)]
    natives: list[dict[str, Any]] = [{"provider": "platform"}]
    for provider in copy.deepcopy(providers):
        natives.append({"provider": provider["id"], **provider.pop("rules", {})})
        specs.append(provider)
    return {
        "schema_version": 2,
        "providers": specs,
        "runtimes": [
            {
                "id": TEST_RUNTIME,
                "api": "openai",
                "proxy_env": {"base_url": "OPENAI_BASE_URL", "token": "OPENAI_API_KEY"},
                "providers": natives,
            }
        ],
    }


@pytest.fixture(scope="session")
def builtin() -> CompiledRegistry:
    return built_in_registry()


@pytest.fixture(scope="session")
def make_registry() -> RegistryFactory:
    """Compile a registry of runtime `rt`, the platform provider and the given providers."""

    def build(*providers: dict[str, Any]) -> CompiledRegistry:
        return compile_registry(registry_document(list(providers)), "<test registry>")

    return build


@pytest.fixture(scope="session")
def specificity_registry(make_registry: RegistryFactory) -> CompiledRegistry:
    return make_registry(*SPECIFICITY_PROVIDERS)
