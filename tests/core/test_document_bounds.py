"""The bounds of an untrusted registry or policy (docs/API.md "Document bounds"): no YAML
anchors, aliases or tags; at most MAX_DOCUMENT_BYTES, MAX_DOCUMENT_DEPTH levels and
MAX_DOCUMENT_NODES nodes; error texts quote values cut short, never in full."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.core.hostile_documents import (
    A_LOCAL_TAG,
    A_PYTHON_TAG,
    A_STANDARD_TAG,
    AN_ANCHOR_ALONE,
    AS_DEEP_AS_ALLOWED,
    BILLION_LAUGHS,
    ONE_ALIAS,
    TOO_DEEP,
    TOO_MANY_BYTES,
    TOO_MANY_NODES,
    nested,
    wide,
)

from llmbilling.config.registry import built_in_registry
from llmbilling.config.yaml_documents import (
    dump_json_document,
    dump_yaml_document,
    parse_yaml_mapping,
    read_yaml_mapping,
)
from llmbilling.core.documents import (
    MAX_DOCUMENT_BYTES,
    MAX_DOCUMENT_DEPTH,
    MAX_DOCUMENT_NODES,
    QUOTE_LIMIT,
)
from llmbilling.core.policy import compile_policy
from llmbilling.core.registry import compile_registry
from llmbilling.errors import PolicyError, RegistryError

REFUSED_YAML = [
    pytest.param(BILLION_LAUGHS, "anchors and aliases are not allowed", id="billion-laughs"),
    pytest.param(ONE_ALIAS, "anchors and aliases are not allowed", id="one-alias"),
    pytest.param(AN_ANCHOR_ALONE, "anchors and aliases are not allowed", id="an-anchor"),
    pytest.param(A_PYTHON_TAG, "explicit YAML tags are not allowed", id="python-tag"),
    pytest.param(A_LOCAL_TAG, "explicit YAML tags are not allowed", id="local-tag"),
    pytest.param(A_STANDARD_TAG, "explicit YAML tags are not allowed", id="standard-tag"),
    pytest.param(TOO_DEEP, f"more than {MAX_DOCUMENT_DEPTH} levels", id="too-deep"),
    pytest.param(TOO_MANY_NODES, f"more than {MAX_DOCUMENT_NODES} nodes", id="too-many-nodes"),
    pytest.param(TOO_MANY_BYTES, f"more than {MAX_DOCUMENT_BYTES} bytes", id="too-many-bytes"),
]


@pytest.mark.parametrize(("text", "problem"), REFUSED_YAML)
def test_a_yaml_document_outside_the_bounds_is_refused(text: str, problem: str) -> None:
    with pytest.raises(PolicyError) as refused:
        parse_yaml_mapping(text, "pasted policy", PolicyError)
    assert refused.value.file == "pasted policy"
    assert refused.value.problem.startswith("refused: ")
    assert problem in refused.value.problem


@pytest.mark.parametrize(("text", "problem"), REFUSED_YAML)
def test_a_yaml_file_outside_the_bounds_is_refused(text: str, problem: str, tmp_path: Path) -> None:
    path = tmp_path / "registry.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RegistryError, match=problem):
        read_yaml_mapping(path, RegistryError)


def test_a_refusal_names_the_line_and_column() -> None:
    with pytest.raises(PolicyError) as refused:
        parse_yaml_mapping(ONE_ALIAS, "p.yaml", PolicyError)
    assert refused.value.path == "line 1, column 7"


def test_a_key_that_is_a_list_is_an_error_not_a_crash() -> None:
    with pytest.raises(PolicyError, match="a mapping key must be a plain value"):
        parse_yaml_mapping("? [rungs]\n: [deployment_default]\n", "p.yaml", PolicyError)


def test_a_document_as_deep_as_allowed_reads() -> None:
    assert parse_yaml_mapping(AS_DEEP_AS_ALLOWED, "p.yaml", PolicyError)["rungs"] == nested(
        MAX_DOCUMENT_DEPTH - 1
    )


@pytest.mark.parametrize("dump", [dump_yaml_document, dump_json_document])
def test_the_built_in_registry_written_out_reads_back_within_the_bounds(dump: Any) -> None:
    registry = built_in_registry()
    text = dump(registry.to_document())
    document = parse_yaml_mapping(text, "written", RegistryError)
    assert compile_registry(document, "written").version == registry.version


# --- parsed documents (JSON proposals): depth and nodes, before validation -------------------

REFUSED_PARSED = [
    pytest.param({"rungs": nested(MAX_DOCUMENT_DEPTH)}, "levels deep", id="too-deep"),
    pytest.param({"rungs": wide(MAX_DOCUMENT_NODES)}, "nodes", id="too-many-nodes"),
    pytest.param(
        {f"k{index}": index for index in range(MAX_DOCUMENT_NODES // 2)},
        "nodes",
        id="keys-count-as-nodes",
    ),
]


@pytest.mark.parametrize(("document", "problem"), REFUSED_PARSED)
def test_a_parsed_policy_outside_the_bounds_is_refused_before_validation(
    document: dict[str, Any], problem: str
) -> None:
    with pytest.raises(PolicyError) as refused:
        compile_policy(document, "request body: policy")
    assert refused.value.problem.startswith("refused: ")
    assert problem in refused.value.problem


@pytest.mark.parametrize(("document", "problem"), REFUSED_PARSED)
def test_a_parsed_registry_outside_the_bounds_is_refused_before_validation(
    document: dict[str, Any], problem: str
) -> None:
    with pytest.raises(RegistryError, match=problem):
        compile_registry(document, "request body: registry")


# --- error texts quote values cut short --------------------------------------------------------

LONG = "x" * 50_000
MESSAGE_LIMIT = 1_000


def _registry_with(provider: dict[str, Any], runtime_provider: str = "p") -> dict[str, Any]:
    return {
        "schema_version": 2,
        "providers": [
            {"id": "platform", "name": "P", "platform": True, "auth_env": ["A"]},
            provider,
        ],
        "runtimes": [
            {
                "id": "rt",
                "api": "openai",
                "proxy_env": {"base_url": "B", "token": "T"},
                "providers": [{"provider": runtime_provider}],
            }
        ],
    }


QUOTING_ERRORS = [
    pytest.param(
        _registry_with({"id": "p", "name": "P", "auth_env": ["K"], "pattern": LONG}),
        id="pattern",
    ),
    pytest.param(
        _registry_with({"id": "p", "name": "P", "auth_env": ["K"]}, runtime_provider=LONG),
        id="unknown-provider",
    ),
    pytest.param(
        _registry_with({"id": "platform", "name": "P", "auth_env": ["K"]}) | {LONG: 1},
        id="unknown-key",
    ),
]


@pytest.mark.parametrize("document", QUOTING_ERRORS)
def test_a_registry_error_quotes_a_long_value_cut_short(document: dict[str, Any]) -> None:
    with pytest.raises(RegistryError) as refused:
        compile_registry(document, "r.yaml")
    assert len(refused.value.message) < MESSAGE_LIMIT
    assert "x" * QUOTE_LIMIT in refused.value.message


def test_a_duplicate_key_is_quoted_cut_short() -> None:
    text = f"? {LONG}\n: 1\n? {LONG}\n: 2\n"  # explicit keys: an implicit one is short
    with pytest.raises(PolicyError) as refused:
        parse_yaml_mapping(text, "p.yaml", PolicyError)
    assert "duplicate key" in refused.value.message
    assert len(refused.value.message) < MESSAGE_LIMIT
