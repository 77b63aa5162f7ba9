"""Read YAML configuration documents (every failure a typed DocumentError), and write them
back as YAML or JSON that reads back equal.

Every document read here is bounded before anything is built from it: at most
:data:`~llmbilling.core.documents.MAX_DOCUMENT_BYTES` of UTF-8, no anchors, aliases or
explicit tags, at most :data:`~llmbilling.core.documents.MAX_DOCUMENT_DEPTH` levels and
:data:`~llmbilling.core.documents.MAX_DOCUMENT_NODES` nodes. Aliases are what let a few hundred
bytes expand into gigabytes ("billion laughs"); registry and policy files never need them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, NoReturn

import yaml

from llmbilling.core.documents import (
    BOUNDS_IN_WORDS,
    MAX_DOCUMENT_BYTES,
    MAX_DOCUMENT_DEPTH,
    MAX_DOCUMENT_NODES,
    quoted,
    shortened,
)
from llmbilling.errors import DocumentError


def read_yaml_mapping(path: str | Path, error_type: type[DocumentError]) -> dict[str, Any]:
    """The mapping at the top of a YAML file; ``error_type`` names the file and the problem.

    A file over :data:`MAX_DOCUMENT_BYTES` is refused after reading one byte more than that."""
    source = str(path)
    try:
        with Path(path).open("rb") as file:
            data = file.read(MAX_DOCUMENT_BYTES + 1)
        text = data.decode("utf-8")
    except (OSError, ValueError) as exc:
        # ValueError: not UTF-8 (UnicodeDecodeError), or a NUL byte in the path (which only a
        # setting can carry, e.g. from a .env file: argv and the environment cannot).
        problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise error_type(source, "", f"cannot read the file: {problem}") from None
    return parse_yaml_mapping(text, source, error_type)


class _BoundedLoader(yaml.SafeLoader):
    """A safe loader that refuses anchors, aliases and explicit tags, caps nesting depth and
    node count while composing (before any Python object is built), and rejects duplicate
    mapping keys instead of keeping the last one: two ``claude-code:`` blocks would otherwise
    drop rules without a word. A refusal raises ``error_type`` naming ``source`` and the line."""

    def __init__(self, text: str, source: str, error_type: type[DocumentError]) -> None:
        super().__init__(text)
        self._source = source
        self._error_type = error_type
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            self._refuse("YAML anchors and aliases are not allowed", event)
        tag = getattr(event, "tag", None)
        if tag is not None:
            self._refuse(f"explicit YAML tags are not allowed ({quoted(tag)})", event)
        self._nodes += 1
        if self._nodes > MAX_DOCUMENT_NODES:
            self._refuse(f"more than {MAX_DOCUMENT_NODES} nodes", event)
        self._depth += 1
        if self._depth > MAX_DOCUMENT_DEPTH:
            self._refuse(f"nested more than {MAX_DOCUMENT_DEPTH} levels deep", event)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        return node

    def _refuse(self, problem: str, event: yaml.Event) -> NoReturn:
        mark = event.start_mark
        where = "" if mark is None else f"line {mark.line + 1}, column {mark.column + 1}"
        raise self._error_type(self._source, where, f"refused: {problem} ({BOUNDS_IN_WORDS})")

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                # A list or mapping as a key (``? [a]``) is unhashable, and no document has one.
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark
                )
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {quoted(key)}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml_mapping(text: str, source: str, error_type: type[DocumentError]) -> dict[str, Any]:
    """The mapping ``text`` holds, within the bounds above; anything else raises ``error_type``
    naming ``source``, the line and column when known, and the problem."""
    if len(text.encode("utf-8", errors="surrogatepass")) > MAX_DOCUMENT_BYTES:
        raise error_type(
            source, "", f"refused: more than {MAX_DOCUMENT_BYTES} bytes ({BOUNDS_IN_WORDS})"
        )
    loader = _BoundedLoader(text, source, error_type)  # a SafeLoader subclass
    try:
        document = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = shortened(getattr(exc, "problem", None) or "not valid YAML")
        raise error_type(source, where, f"not valid YAML: {problem}") from None
    finally:
        loader.dispose()
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
