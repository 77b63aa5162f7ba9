"""Read a precedence policy from a YAML file (the contract's policy needs no file)."""

from __future__ import annotations

from pathlib import Path

from llmbilling.config.yaml_documents import read_yaml_mapping
from llmbilling.core.policy import CONTRACT_POLICY, CompiledPolicy, compile_policy
from llmbilling.errors import PolicyError


def load_policy(path: str | Path | None = None) -> CompiledPolicy:
    """Load and validate a policy file, or the contract's policy when ``path`` is None.

    Raises :class:`PolicyError` naming the file, the path inside it and the problem.
    """
    if path is None:
        return CONTRACT_POLICY
    return compile_policy(read_yaml_mapping(path, PolicyError), str(path))
