"""The OFREP 0.3.0 document (``/work/shared/reference/ofrep/service/openapi.yaml``) as the
judge of our OFREP answers: JSON-Schema validators for its response bodies (jsonschema_rs,
already installed as schemathesis's validator), and the document itself for schemathesis.

One correction is applied, and only one (docs/OFREP.md "The document's one defect"): its
``evaluationSuccess`` is a ``oneOf`` over the value types *and* ``codeDefaultFlag``, an
object schema with no constraint, so every answer carrying a ``value`` matches two branches
and fails ``oneOf``: as written, no successful evaluation with a value can validate. The
schema's own words say the code default is the answer "without a ``value`` property", so
``codeDefaultFlag`` gets ``not: {required: [value]}``; nothing else changes.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml

OFREP_DOCUMENT = Path("/work/shared/reference/ofrep/service/openapi.yaml")


@functools.cache
def ofrep_document() -> dict[str, Any]:
    """The OFREP document with the one correction above."""
    document: dict[str, Any] = yaml.safe_load(OFREP_DOCUMENT.read_text())
    corrected = copy.deepcopy(document)
    corrected["components"]["schemas"]["codeDefaultFlag"]["not"] = {"required": ["value"]}
    return corrected


@functools.cache
def validator(schema_name: str) -> Any:
    """A JSON-Schema validator of one of the document's schemas (Draft 2020-12)."""
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": f"#/components/schemas/{schema_name}",
        "components": ofrep_document()["components"],
    }
    return jsonschema_rs.validator_for(schema)


def problems_of(schema_name: str, instance: object) -> list[str]:
    """Why ``instance`` is not a valid ``schema_name`` of the OFREP document (empty: it is)."""
    return [error.message for error in validator(schema_name).iter_errors(instance)]


# The schema of each OFREP answer, by (operation, status), as the document's responses say.
SINGLE_SCHEMAS = {200: "serverEvaluationSuccess", 400: "evaluationFailure", 404: "flagNotFound"}
BULK_SCHEMAS = {200: "bulkEvaluationSuccess", 400: "bulkEvaluationFailure"}


def the_document_as_written_rejects_every_valued_answer() -> bool:
    """Whether the uncorrected document still has the defect (so the correction is needed)."""
    document = yaml.safe_load(OFREP_DOCUMENT.read_text())
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": "#/components/schemas/serverEvaluationSuccess",
        "components": document["components"],
    }
    answer = {"key": "flag", "reason": "STATIC", "variant": "on", "value": True}
    return not jsonschema_rs.validator_for(schema).is_valid(answer)
