"""Read a provider registry from a YAML file or from the copy shipped with the package."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from llmbilling.config.yaml_documents import parse_yaml_mapping, read_yaml_mapping
from llmbilling.core.registry import CompiledRegistry, compile_registry
from llmbilling.errors import RegistryError

BUILT_IN_REGISTRY_NAME = "<built-in registry>"


def load_registry(path: str | Path | None = None) -> CompiledRegistry:
    """Load and compile a registry file, or the built-in one when ``path`` is None.

    Raises :class:`RegistryError` naming the file, the path inside it and the problem.
    """
    if path is None:
        return built_in_registry()
    return compile_registry(read_yaml_mapping(path, RegistryError), str(path))


@cache
def built_in_registry() -> CompiledRegistry:
    """The registry shipped with the package, compiled once per process."""
    text = resources.files("llmbilling").joinpath("data/registry.yaml").read_text("utf-8")
    document = parse_yaml_mapping(text, BUILT_IN_REGISTRY_NAME, RegistryError)
    return compile_registry(document, BUILT_IN_REGISTRY_NAME)
