"""Shared helpers for validating configuration documents (registry, policy). Pure."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from llmbilling.errors import DocumentError

ModelT = TypeVar("ModelT", bound=BaseModel)


def validate_document(
    schema: type[ModelT],
    document: Mapping[str, Any],
    source: str,
    error_type: type[DocumentError],
) -> ModelT:
    """Validate ``document`` against ``schema``; the first problem raises ``error_type``
    naming ``source``, the path inside the document and the problem."""
    try:
        return schema.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise error_type(source, format_location(first["loc"]), first["msg"]) from None


def format_location(location: tuple[int | str, ...]) -> str:
    """``("providers", 2, "models")`` → ``providers[2].models``."""
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def content_hash(model: BaseModel) -> str:
    """A short, stable version id: the hash of the canonical JSON of the validated document."""
    canonical = json.dumps(model.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]
