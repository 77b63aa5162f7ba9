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
    except (OSError, UnicodeDecodeError) as exc:
        problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise error_type(source, "", f"cannot read the file: {problem}") from None
    return parse_yaml_mapping(text, source, error_type)


def parse_yaml_mapping(text: str, source: str, error_type: type[DocumentError]) -> dict[str, Any]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise error_type(source, where, f"not valid YAML: {problem}") from None
    if not isinstance(document, dict):
        raise error_type(source, "", "the document must be a mapping")
    return document
