"""Read YAML configuration documents, turning every failure into a typed DocumentError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from llmbilling.errors import DocumentError


def read_yaml_mapping(path: str | Path, error_type: type[DocumentError]) -> dict[str, Any]:
    """The mapping at the top of a YAML file; ``error_type`` names the file and the problem."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:
        # ValueError: not UTF-8 (UnicodeDecodeError), or a NUL byte in the path (which only a
        # setting can carry, e.g. from a .env file: argv and the environment cannot).
        problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise error_type(source, "", f"cannot read the file: {problem}") from None
    return parse_yaml_mapping(text, source, error_type)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that rejects duplicate mapping keys instead of keeping the last one:
    two ``claude-code:`` blocks would otherwise drop rules without a word."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml_mapping(text: str, source: str, error_type: type[DocumentError]) -> dict[str, Any]:
    try:
        document = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise error_type(source, where, f"not valid YAML: {problem}") from None
    if not isinstance(document, dict):
        raise error_type(source, "", "the document must be a mapping")
    return document
