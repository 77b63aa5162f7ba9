"""The provider registry file (spec §3): validation errors name the file, the path inside it and
the problem; the built-in registry covers what the spec names."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmbilling.config.registry import built_in_registry, load_registry
from llmbilling.core.registry import CompiledRegistry
from llmbilling.errors import LlmBillingError, RegistryError

VALID: dict[str, Any] = {
    "schema_version": 2,
    "providers": [
        {
            "id": "platform",
            "name": "Platform",
            "platform": True,
            "auth_env": ["MOLECULE_LLM_USAGE_TOKEN"],
            "pattern": "^platform/",
        },
        {
            "id": "openai",
            "name": "OpenAI",
            "auth_env": ["OPENAI_API_KEY"],
            "endpoint_env": ["OPENAI_BASE_URL"],
            "pattern": "^gpt-",
        },
        {"id": "anthropic-api", "name": "Anthropic", "auth_env": ["ANTHROPIC_API_KEY"]},
    ],
    "runtimes": [
        {
            "id": "claude-code",
            "api": "anthropic",
            "proxy_env": {"base_url": "ANTHROPIC_BASE_URL", "token": "ANTHROPIC_API_KEY"},
            "providers": [{"provider": "anthropic-api", "alias": ["opus"]}],
        },
        {
            "id": "codex",
            "api": "openai",
            "proxy_env": {"base_url": "OPENAI_BASE_URL", "token": "OPENAI_API_KEY"},
            "providers": [{"provider": "openai", "exact": ["gpt-5.5"]}],
        },
    ],
}

Location = tuple[str | int, ...]


def with_value(location: Location, value: Any) -> dict[str, Any]:
    """A copy of VALID with the value at ``location`` set (or added)."""
    document = copy.deepcopy(VALID)
    parent: Any = document
    for step in location[:-1]:
        parent = parent[step]
    parent[location[-1]] = value
    return document


def without(location: Location) -> dict[str, Any]:
    document = copy.deepcopy(VALID)
    parent: Any = document
    for step in location[:-1]:
        parent = parent[step]
    del parent[location[-1]]
    return document


def appended(location: Location, value: Any) -> dict[str, Any]:
    document = copy.deepcopy(VALID)
    target: Any = document
    for step in location:
        target = target[step]
    target.append(copy.deepcopy(value))
    return document


def write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def load_error(path: Path) -> RegistryError:
    with pytest.raises(RegistryError) as caught:
        load_registry(path)
    return caught.value


def test_the_valid_fixture_document_loads(tmp_path: Path) -> None:
    registry = load_registry(write(tmp_path, VALID))
    assert set(registry.providers) == {"platform", "openai", "anthropic-api"}


# fmt: off
INVALID_DOCUMENTS = [
    pytest.param(with_value(("colour",), "red"), "colour", "Extra inputs are not permitted",
                 id="unknown-top-level-key"),
    pytest.param(with_value(("providers", 1, "colour"), "red"), "providers[1].colour",
                 "Extra inputs are not permitted", id="unknown-provider-key"),
    pytest.param(with_value(("runtimes", 1, "providers", 0, "regex"), ["gpt"]),
                 "runtimes[1].providers[0].regex", "Extra inputs are not permitted",
                 id="unknown-rule-kind"),
    pytest.param(with_value(("runtimes", 0, "api"), "grpc"), "runtimes[0].api",
                 "'anthropic' or 'openai'", id="unknown-runtime-api"),
    pytest.param(with_value(("runtimes", 0, "api"), 42), "runtimes[0].api",
                 "'anthropic' or 'openai'", id="runtime-api-wrong-type"),
    pytest.param(without(("runtimes", 0, "proxy_env")), "runtimes[0].proxy_env",
                 "Field required", id="runtime-without-proxy-env"),
    pytest.param(with_value(("providers", 1, "auth_env"), "OPENAI_API_KEY"),
                 "providers[1].auth_env", "valid list", id="auth-env-not-a-list"),
    pytest.param(with_value(("providers", 1, "auth_env"), []), "providers[1].auth_env",
                 "at least 1 item", id="empty-credential-list"),
    pytest.param(without(("providers", 2, "auth_env")), "providers[2].auth_env",
                 "Field required", id="no-credential-list"),
    pytest.param(with_value(("runtimes", 1, "providers", 0, "exact"), [42]),
                 "runtimes[1].providers[0].exact[0]", "valid string", id="rule-not-a-string"),
    pytest.param(with_value(("runtimes", 1, "providers", 0, "exact"), ["ok", " \t"]),
                 "runtimes[1].providers[0].exact[1]", "at least 1 character", id="blank-rule"),
    pytest.param(with_value(("runtimes", 1, "providers"), {"openai": {}}),
                 "runtimes[1].providers", "valid list", id="providers-not-a-list"),
    pytest.param(with_value(("providers", 1, "platform"), "maybe"), "providers[1].platform",
                 "valid boolean", id="platform-flag-not-a-boolean"),
    pytest.param(with_value(("schema_version",), 1), "schema_version", "Input should be 2",
                 id="schema-version-1"),
    pytest.param(without(("runtimes",)), "runtimes", "Field required", id="no-runtimes"),
    pytest.param(with_value(("providers",), []), "providers", "at least 1",
                 id="empty-providers"),
    pytest.param(with_value(("providers", 1, "id"), "Open AI"), "providers[1].id",
                 "pattern", id="provider-id-not-an-id"),
    pytest.param(with_value(("providers", 1, "name"), ""), "providers[1].name",
                 "at least 1 character", id="provider-name-empty"),
    pytest.param(with_value(("providers", 1, "auth_env"), ["openai-key"]),
                 "providers[1].auth_env[0]", "pattern", id="bad-auth-env-name"),
    pytest.param(with_value(("providers", 1, "endpoint_env"), ["openai url"]),
                 "providers[1].endpoint_env[0]", "pattern", id="bad-endpoint-env-name"),
    pytest.param(with_value(("runtimes", 1, "proxy_env", "token"), "openai key"),
                 "runtimes[1].proxy_env.token", "pattern", id="bad-proxy-env-name"),
    pytest.param(with_value(("providers", 1, "pattern"), "gpt-"), "providers[1].pattern",
                 "cannot be expressed as exact/alias/prefix rules: must start with '^'",
                 id="unanchored-pattern"),
    pytest.param(with_value(("providers", 1, "pattern"), "^gpt-.*-mini"),
                 "providers[1].pattern", "cannot be expressed as exact/alias/prefix rules",
                 id="pattern-with-wildcard"),
    pytest.param(with_value(("providers", 1, "pattern"), "^gpt-(4|5"), "providers[1].pattern",
                 "not a valid regular expression", id="pattern-not-a-regex"),
    pytest.param(with_value(("runtimes", 1, "providers", 0, "provider"), "nosuch"),
                 "runtimes[1].providers[0].provider", "unknown provider 'nosuch'",
                 id="runtime-lists-an-unknown-provider"),
    pytest.param(appended(("runtimes", 1, "providers"), {"provider": "openai"}),
                 "runtimes[1].providers[1].provider",
                 "provider 'openai' is listed twice on runtime 'codex' (first at providers[0])",
                 id="provider-listed-twice-on-a-runtime"),
    pytest.param(appended(("providers",), VALID["providers"][1]), "providers[3].id",
                 "duplicate provider 'openai'", id="duplicate-provider"),
    pytest.param(appended(("runtimes",), VALID["runtimes"][1]), "runtimes[2].id",
                 "duplicate runtime 'codex'", id="duplicate-runtime"),
    pytest.param(with_value(("providers", 2, "platform"), True), "providers[2].platform",
                 "a second platform provider: 'platform' (providers[0]) already has",
                 id="second-platform-provider"),
    pytest.param(with_value(("providers", 0, "platform"), False), "providers",
                 "no provider has 'platform: true'", id="no-platform-provider"),
]
# fmt: on


@pytest.mark.parametrize(("document", "location", "problem"), INVALID_DOCUMENTS)
def test_invalid_document_names_file_location_and_problem(
    tmp_path: Path, document: dict[str, Any], location: str, problem: str
) -> None:
    path = write(tmp_path, document)

    error = load_error(path)

    assert (error.file, error.path) == (str(path), location)
    assert problem in error.problem
    assert str(error) == f"{path}: {location}: {error.problem}"


def test_registry_error_is_a_typed_error_with_a_stable_code(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, with_value(("colour",), "red")))
    assert isinstance(error, LlmBillingError)
    assert error.code == "REGISTRY_INVALID"


# --- files that are not registry documents at all ---------------------------------------------


def test_missing_file_cannot_be_read(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    error = load_error(path)
    assert (error.file, error.path) == (str(path), "")
    assert "cannot read the file" in error.problem


def test_directory_cannot_be_read(tmp_path: Path) -> None:
    error = load_error(tmp_path)
    assert error.file == str(tmp_path)
    assert "cannot read the file" in error.problem


def test_file_that_is_not_utf8_cannot_be_read(tmp_path: Path) -> None:
    path = tmp_path / "registry.yaml"
    path.write_bytes(b"\xff\xfeproviders: []\n")
    assert "cannot read the file" in load_error(path).problem


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param("schema_version: 2\nruntimes: [codex\nproviders: []\n", 3, id="open-list"),
        pytest.param("schema_version: 2\nruntimes:\n\t- id: codex\n", 3, id="tab-indent"),
    ],
)
def test_invalid_yaml_names_the_line(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "registry.yaml"
    path.write_text(text, encoding="utf-8")

    error = load_error(path)

    assert error.file == str(path)
    assert error.path.startswith(f"line {line}, column ")
    assert error.problem.startswith("not valid YAML")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("- runtimes\n- providers\n", id="a-list"),
        pytest.param("just text\n", id="a-scalar"),
        pytest.param("", id="empty-file"),
        pytest.param("# only a comment\n", id="only-comments"),
    ],
)
def test_document_that_is_not_a_mapping_is_rejected(tmp_path: Path, text: str) -> None:
    path = tmp_path / "registry.yaml"
    path.write_text(text, encoding="utf-8")

    error = load_error(path)

    assert (error.file, error.path) == (str(path), "")
    assert "must be a mapping" in error.problem


# --- loading -----------------------------------------------------------------------------------


def test_no_path_loads_the_built_in_registry() -> None:
    assert load_registry(None) is built_in_registry()


def test_version_is_a_content_hash(tmp_path: Path) -> None:
    first = load_registry(write(tmp_path, VALID))
    again = load_registry(write(tmp_path, copy.deepcopy(VALID)))
    changed = load_registry(write(tmp_path, with_value(("providers", 1, "name"), "Renamed")))
    assert first is not again
    assert first.version == again.version != changed.version


# --- the built-in registry covers the spec ------------------------------------------------------

SPEC_RUNTIMES = {
    "claude-code",
    "codex",
    "hermes",
    "openclaw",
    "google-adk",
    "gemini-cli",
    "langgraph",
    "crewai",
    "autogen",
    "deepagents",
}
SPEC_PROVIDERS = {
    "platform",
    "anthropic-api",
    "anthropic-oauth",
    "openai",
    "google",
    "kimi-coding",
    "minimax",
    "deepseek",
}


def test_built_in_registry_declares_every_runtime_named_in_the_spec(
    builtin: CompiledRegistry,
) -> None:
    assert set(builtin.runtimes) >= SPEC_RUNTIMES


def test_built_in_registry_declares_every_provider_named_in_the_spec(
    builtin: CompiledRegistry,
) -> None:
    assert set(builtin.providers) >= SPEC_PROVIDERS


def test_built_in_platform_provider_is_platform(builtin: CompiledRegistry) -> None:
    assert builtin.platform_provider == "platform"
    assert [p.id for p in builtin.providers.values() if p.platform] == ["platform"]


@pytest.mark.parametrize(
    ("provider", "name"),
    [
        ("anthropic-api", "ANTHROPIC_API_KEY"),
        ("anthropic-oauth", "CLAUDE_CODE_OAUTH_TOKEN"),
        ("openai", "OPENAI_API_KEY"),
    ],
)
def test_built_in_auth_env_names_from_the_spec(
    builtin: CompiledRegistry, provider: str, name: str
) -> None:
    assert name in builtin.providers[provider].auth_env
    assert name in builtin.all_auth_env


def test_claude_code_speaks_anthropic_through_anthropic_env(builtin: CompiledRegistry) -> None:
    runtime = builtin.runtimes["claude-code"]
    assert runtime.api == "anthropic"
    assert (runtime.proxy_env.base_url, runtime.proxy_env.token) == (
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_API_KEY",
    )


@pytest.mark.parametrize("runtime_id", sorted(SPEC_RUNTIMES - {"claude-code"}))
def test_other_runtimes_speak_openai_through_openai_env(
    builtin: CompiledRegistry, runtime_id: str
) -> None:
    runtime = builtin.runtimes[runtime_id]
    assert runtime.api == "openai"
    assert (runtime.proxy_env.base_url, runtime.proxy_env.token) == (
        "OPENAI_BASE_URL",
        "OPENAI_API_KEY",
    )


def test_every_built_in_runtime_names_its_proxy_env(builtin: CompiledRegistry) -> None:
    unnamed = [
        r.id for r in builtin.runtimes.values() if not (r.proxy_env.base_url and r.proxy_env.token)
    ]
    assert unnamed == []


def test_duplicate_key_is_rejected_naming_its_line(tmp_path: Path) -> None:
    path = tmp_path / "duplicate.yaml"
    path.write_text(
        "providers: []\nruntimes:\n  - id: codex\n    providers:\n      - provider: a\n"
        "        exact: [x]\n        exact: [y]\n"
    )
    error = load_error(path)
    assert error.path == "line 7, column 9"
    assert "duplicate key 'exact'" in error.problem
