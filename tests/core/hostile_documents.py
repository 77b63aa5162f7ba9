"""Hostile configuration documents, shared by the bound tests of every channel (the YAML
reader, the CLI, the API what-if route and the console's what-if form)."""

from __future__ import annotations

from typing import Any

from llmbilling.core.documents import MAX_DOCUMENT_BYTES, MAX_DOCUMENT_DEPTH, MAX_DOCUMENT_NODES


def _laughs() -> str:
    # The classic: nine levels of nine aliases each, a few hundred bytes that expand to 9**9
    # strings once the aliases are followed.
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 9):
        name, below = chr(ord("a") + level), chr(ord("a") + level - 1)
        lines.append(f"{name}: &{name} [{', '.join([f'*{below}'] * 9)}]")
    return "\n".join(lines) + "\n"


BILLION_LAUGHS = _laughs()
ONE_ALIAS = "base: &base [workspace_override, deployment_default]\nrungs: *base\n"
AN_ANCHOR_ALONE = "rungs: &chain [workspace_override, deployment_default]\n"
A_PYTHON_TAG = "rungs: !!python/object/apply:os.system [true]\n"
A_LOCAL_TAG = "rungs: !chain [workspace_override, deployment_default]\n"
A_STANDARD_TAG = "rungs: !!seq [workspace_override, deployment_default]\n"
TOO_DEEP = "rungs: " + "[" * MAX_DOCUMENT_DEPTH + "]" * MAX_DOCUMENT_DEPTH + "\n"
AS_DEEP_AS_ALLOWED = "rungs: " + "[" * (MAX_DOCUMENT_DEPTH - 1) + "]" * (MAX_DOCUMENT_DEPTH - 1)
TOO_MANY_NODES = "rungs: [" + ", ".join(["0"] * MAX_DOCUMENT_NODES) + "]\n"
TOO_MANY_BYTES = "rungs: [workspace_override, deployment_default]\n" + "#" * MAX_DOCUMENT_BYTES


def nested(depth: int) -> Any:
    """A JSON value ``depth`` levels deep: lists in lists."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def wide(nodes: int) -> list[int]:
    """A JSON list of ``nodes`` small numbers."""
    return [0] * nodes
