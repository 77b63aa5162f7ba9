"""Read YAML configuration documents (every failure a typed DocumentError), and write them
back as YAML or JSON that reads back equal."""

from __future__ import annotations

import json
import re
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


class _PlainDumper(yaml.SafeDumper):
    """A safe dumper that writes every object in full: no ``&anchor``/``*alias`` pairs, which
    registry and policy files do not take."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    # PyYAML writes U+0085 (NEL) raw inside a plain or single-quoted scalar, where a reader
    # takes it for a line break; double quotes make it the escape "\N".
    style = '"' if "\x85" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_PlainDumper.add_representer(str, _represent_str)
_NO_FOLDING = 1 << 30
"""A line width no value reaches: long text stays on one line instead of being folded."""

# Characters a YAML reader refuses raw (C1 controls, DEL, non-characters, a BOM inside the
# stream) or takes for line breaks (NEL, LS, PS); JSON's own escapes cover the C0 controls.
_RAW_IN_JSON_UNSAFE_FOR_YAML = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")


def dump_yaml_document(document: Any) -> str:
    """``document`` as block YAML in its own key order, without anchors or aliases, text
    unescaped where YAML allows and lines never folded; :func:`parse_yaml_mapping` reads it
    back equal."""
    text: str = yaml.dump(
        document,
        Dumper=_PlainDumper,
        sort_keys=False,
        allow_unicode=True,
        width=_NO_FOLDING,
    )
    return text


def dump_json_document(document: Any) -> str:
    """``document`` as indented JSON that :func:`parse_yaml_mapping` also reads back equal.

    JSON is YAML but for raw characters a YAML reader refuses or reads as line breaks: those
    are written as ``\\uXXXX`` escapes. Other text stays raw, non-ASCII included: the escape of
    a character beyond the Basic Multilingual Plane is a surrogate pair, which PyYAML does not
    join into one character."""
    text = json.dumps(document, indent=2, ensure_ascii=False)
    return _RAW_IN_JSON_UNSAFE_FOR_YAML.sub(lambda found: f"\\u{ord(found.group()):04x}", text)
