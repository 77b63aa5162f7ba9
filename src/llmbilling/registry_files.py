"""Read a provider registry from a YAML file or from the copy shipped with the package."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

import yaml

from llmbilling.core.registry import CompiledRegistry, compile_registry
from llmbilling.errors import RegistryError

BUILT_IN_REGISTRY_NAME = "<built-in registry>"


def load_registry(path: str | Path | None = None) -> CompiledRegistry:
    """Load and compile a registry file, or the built-in one when ``path`` is None.

    Raises :class:`RegistryError` naming the file, the path inside it and the problem.
    """
    if path is None:
        return built_in_registry()
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise RegistryError(source, "", f"cannot read the file: {problem}") from None
    return _compile_text(text, source)


@cache
def built_in_registry() -> CompiledRegistry:
    """The registry shipped with the package, compiled once per process."""
    text = resources.files("llmbilling").joinpath("data/registry.yaml").read_text("utf-8")
    return _compile_text(text, BUILT_IN_REGISTRY_NAME)


def _compile_text(text: str, source: str) -> CompiledRegistry:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise RegistryError(source, where, f"not valid YAML: {problem}") from None
    if not isinstance(document, dict):
        raise RegistryError(
            source, "", "the document must be a mapping with runtimes and providers"
        )
    return compile_registry(document, source)
