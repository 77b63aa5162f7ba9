"""Shared helpers for validating configuration documents (registry, policy). Pure."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from llmbilling.errors import DocumentError

ModelT = TypeVar("ModelT", bound=BaseModel)

# The bounds of an untrusted document (a registry or policy file, a proposal): far above any
# honest document (the built-in registry is 12 KiB, 959 nodes, 7 levels deep) and low enough
# that reading and validating one stays in milliseconds. The API's 64 KiB body limit
# (api/limits.py) bounds the bytes of a proposal sent over HTTP.
MAX_DOCUMENT_BYTES = 256 * 1024
MAX_DOCUMENT_DEPTH = 32
MAX_DOCUMENT_NODES = 10_000
BOUNDS_IN_WORDS = (
    f"a document takes no anchors, aliases or tags and at most {MAX_DOCUMENT_BYTES} bytes,"
    f" {MAX_DOCUMENT_DEPTH} levels and {MAX_DOCUMENT_NODES} nodes"
)
QUOTE_LIMIT = 64
"""The most characters of a value an error message quotes."""
PROBLEM_LIMIT = 400
"""The most characters of a problem text an error message carries."""


def validate_document(
    schema: type[ModelT],
    document: Mapping[str, Any],
    source: str,
    error_type: type[DocumentError],
) -> ModelT:
    """Validate ``document`` against ``schema``; the first problem raises ``error_type``
    naming ``source``, the path inside the document and the problem.

    A document over :data:`MAX_DOCUMENT_DEPTH` levels or :data:`MAX_DOCUMENT_NODES` nodes is
    refused before validation, whichever channel it came through (a parsed file, JSON)."""
    refusal = _bound_violation(document)
    if refusal is not None:
        location, problem = refusal
        raise error_type(source, format_location(location), f"refused: {problem}") from None
    try:
        return schema.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        problem = shortened(first["msg"])
        raise error_type(source, format_location(first["loc"]), problem) from None


def _bound_violation(document: object) -> tuple[tuple[int | str, ...], str] | None:
    """Where ``document`` first goes past the depth or node bound, and how; None within them.

    Iterative, and stops at the first violation: a hostile document costs at most
    :data:`MAX_DOCUMENT_NODES` steps."""
    nodes = 0
    pending: list[tuple[object, tuple[int | str, ...]]] = [(document, ())]
    while pending:
        value, location = pending.pop()
        nodes += 1
        if nodes > MAX_DOCUMENT_NODES:
            return location, f"more than {MAX_DOCUMENT_NODES} nodes ({BOUNDS_IN_WORDS})"
        if len(location) >= MAX_DOCUMENT_DEPTH:
            return (
                location,
                f"nested more than {MAX_DOCUMENT_DEPTH} levels deep ({BOUNDS_IN_WORDS})",
            )
        if isinstance(value, Mapping):
            nodes += len(value)  # the keys
            pending.extend((item, (*location, str(key))) for key, item in value.items())
        elif isinstance(value, list | tuple):
            pending.extend((item, (*location, index)) for index, item in enumerate(value))
    return None


def format_location(location: tuple[int | str, ...]) -> str:
    """``("providers", 2, "models")`` → ``providers[2].models``; a long key is cut short."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            name = shortened(str(part), QUOTE_LIMIT)
            text += f".{name}" if text else name
    return text


def shortened(text: str, limit: int = PROBLEM_LIMIT) -> str:
    """``text`` when it has at most ``limit`` characters, else its start, an ellipsis and its
    length: an error message never carries a value in full."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


def quoted(value: object) -> str:
    """``repr(value)`` for an error message, at most :data:`QUOTE_LIMIT` characters of it."""
    if isinstance(value, str) and len(value) > QUOTE_LIMIT:
        return f"{value[:QUOTE_LIMIT]!r}… ({len(value)} characters)"
    return shortened(repr(value), QUOTE_LIMIT)


def content_hash(model: BaseModel) -> str:
    """A short, stable version id: the hash of the canonical JSON of the validated document."""
    canonical = json.dumps(model.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]
