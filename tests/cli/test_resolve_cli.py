"""The real console script, run as a subprocess: resolve, explain and registry commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmbilling import ResolutionInput, built_in_registry, resolve_billing_mode

CLI = str(Path(sys.executable).with_name("llmbilling"))
REPO = Path(__file__).resolve().parents[2]


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args],
        input=None if stdin is None else stdin.decode("utf-8", "surrogateescape"),
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )


def run_bytes(*args: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([CLI, *args], input=stdin, capture_output=True, check=False)


def test_resolve_json_is_the_library_decision_record() -> None:
    result = run(
        "resolve",
        "--runtime",
        "claude-code",
        "--model",
        "kimi-for-coding",
        "--org-default",
        "platform_managed",
        "--workspace-id",
        "ws-1",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    expected = resolve_billing_mode(
        ResolutionInput(
            workspace_id="ws-1",
            org_default="platform_managed",
            runtime="claude-code",
            model="kimi-for-coding",
        ),
        built_in_registry(),
    ).to_dict()
    assert json.loads(result.stdout) == expected


def test_resolve_explains_mode_source_and_every_rung_of_the_trace() -> None:
    result = run("resolve", "--runtime", "codex", "--model", "gpt-5.5", "--org-default", "byokk")
    assert result.returncode == 0, result.stderr
    assert "mode byok" in result.stdout
    assert "source derived_provider" in result.stdout
    for rung in ("workspace_override", "org_default", "derived_provider", "deployment_default"):
        assert rung in result.stdout
    assert "'byokk' is not a mode" in result.stdout


@pytest.mark.parametrize(
    ("flags", "mode", "source"),
    [
        (
            ["--override", "byok", "--workspace-id", "w", "--model", "platform/x"],
            "byok",
            "workspace_override",
        ),
        (
            ["--override-read-failed", "--workspace-id", "w", "--org-default", "byok"],
            "platform_managed",
            "constant_fallback",
        ),
        (["--no-proxy", "--model", "totally-made-up"], "byok", "derived_default"),
        (["--model", "opus", "--auth-env", "ANTHROPIC_API_KEY"], "byok", "derived_provider"),
        ([], "platform_managed", "derived_default"),
    ],
)
def test_resolve_flags_reach_the_decision(flags: list[str], mode: str, source: str) -> None:
    result = run("resolve", "--runtime", "claude-code", *flags, "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert (record["mode"], record["source"]) == (mode, source)


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (
            ["resolve", "--runtime", "codex", "--override", "byokk"],
            ["--override", "platform_managed, byok, disabled"],
        ),
        (["resolve", "--model", "gpt-5.5"], ["--runtime"]),
        (
            ["resolve", "--runtime", "codex", "--registry", "/no/such/registry.yaml"],
            ["/no/such/registry.yaml", "cannot read"],
        ),
        (["resolve", "--batch", "-", "--runtime", "codex"], ["--batch", "--runtime"]),
        (["resolve", "--batch", "/no/such/input.jsonl"], ["--batch", "/no/such/input.jsonl"]),
        (["resolve", "--no-such-flag"], ["--no-such-flag"]),
    ],
)
def test_bad_input_is_one_line_naming_the_field_and_exits_non_zero(
    args: list[str], names: list[str]
) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for name in names:
        assert name in lines[0]


def test_batch_writes_one_record_per_line_in_order() -> None:
    lines = [
        {"workspace_id": "a", "runtime": "codex", "model": "gpt-5.5"},
        {
            "workspace_id": "b",
            "org_default": "  BYOK ",
            "runtime": "codex",
            "model": "openai/gpt-5.4",
        },
        {
            "workspace_id": "c",
            "override_read_failed": True,
            "org_default": "byok",
            "runtime": "claude-code",
            "model": "gpt-5.5",
        },
        {"runtime": "claude-code"},
        {"workspace_id": "e", "runtime": "claude-code", "model": "x", "proxy_configured": False},
    ]
    stdin = "".join(json.dumps(line) + "\n" for line in lines).encode()
    result = run("resolve", "--batch", "-", stdin=stdin)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["workspace_id"], r["mode"], r["source"]) for r in records] == [
        ("a", "byok", "derived_provider"),
        ("b", "byok", "org_default"),
        ("c", "platform_managed", "constant_fallback"),
        (None, "platform_managed", "derived_default"),
        ("e", "byok", "derived_default"),
    ]


def test_batch_record_equals_the_single_resolve_record() -> None:
    line = {
        "workspace_id": "ws-9",
        "override": "disabled",
        "org_default": "byok",
        "runtime": "hermes",
        "model": "deepseek-chat",
        "auth_env": ["DEEPSEEK_API_KEY"],
    }
    batch = run("resolve", "--batch", "-", stdin=(json.dumps(line) + "\n").encode())
    single = run(
        "resolve",
        "--workspace-id",
        "ws-9",
        "--override",
        "disabled",
        "--org-default",
        "byok",
        "--runtime",
        "hermes",
        "--model",
        "deepseek-chat",
        "--auth-env",
        "DEEPSEEK_API_KEY",
        "--json",
    )
    assert json.loads(batch.stdout) == json.loads(single.stdout)


@pytest.mark.parametrize(
    ("bad_line", "field"),
    [
        (b"not json", "line"),
        (b"[1, 2]", "line"),
        (b'{"overide": "byok"}', "overide"),
        (b'{"auth_env": "OPENAI_API_KEY"}', "auth_env"),
        (b'{"model": 42}', "model"),
        (b'{"proxy_configured": "yes"}', "proxy_configured"),
        (b'{"model": "\xff\xfe"}', "line"),
    ],
)
def test_malformed_line_becomes_an_error_record_and_the_batch_goes_on(
    bad_line: bytes, field: str
) -> None:
    good = b'{"workspace_id": "ok", "runtime": "codex", "model": "gpt-5.5"}'
    result = run_bytes("resolve", "--batch", "-", stdin=good + b"\n" + bad_line + b"\n" + good)
    assert result.returncode == 0, result.stderr
    first, error, last = (json.loads(line) for line in result.stdout.splitlines())
    assert first["mode"] == last["mode"] == "byok"
    assert error == {
        "line": 2,
        "error": {"code": "INVALID_INPUT", "field": field, "message": error["error"]["message"]},
    }
    assert field in error["error"]["message"]


def test_batch_streams_each_record_before_the_next_line_arrives() -> None:
    process = subprocess.Popen(
        [CLI, "resolve", "--batch", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        process.stdin.write('{"workspace_id": "first", "runtime": "codex", "model": "gpt-5.5"}\n')
        process.stdin.flush()
        # Input is still open: a streaming batch answers now, a buffering one would hang.
        assert json.loads(process.stdout.readline())["workspace_id"] == "first"
    finally:
        process.stdin.close()
        process.wait(timeout=30)
    assert process.returncode == 0


def test_batch_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "fleet.jsonl"
    path.write_text('{"workspace_id": "f", "runtime": "codex", "model": "gpt-5.5"}\n\n')
    result = run("resolve", "--batch", str(path))
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["workspace_id"] for line in result.stdout.splitlines()] == ["f"]


def test_explain_shows_every_example_workspace() -> None:
    examples = REPO / "examples" / "workspaces.jsonl"
    result = run("explain", str(examples))
    assert result.returncode == 0, result.stderr
    for line in examples.read_text().splitlines():
        workspace_id = json.loads(line)["workspace_id"]
        assert (workspace_id or "pre-provision path") in result.stdout


def test_registry_check_accepts_the_built_in_registry() -> None:
    path = REPO / "src" / "llmbilling" / "data" / "registry.yaml"
    result = run("registry", "check", str(path))
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout
    assert built_in_registry().version in result.stdout


def test_registry_check_names_file_path_and_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "schema_version: 2\n"
        "providers:\n  - {id: platform, name: P, platform: true, auth_env: [T]}\n"
        "runtimes:\n  - {id: codex, api: grpc, proxy_env: {base_url: A, token: B}}\n"
    )
    result = run("registry", "check", str(path))
    assert result.returncode == 2
    assert str(path) in result.stderr
    assert "runtimes[0].api" in result.stderr
    assert "REGISTRY_INVALID" in result.stderr


@pytest.mark.parametrize(
    ("auth_env", "outcome", "winner"),
    [
        (["CLAUDE_CODE_OAUTH_TOKEN"], "ok", "anthropic-oauth"),
        (["ANTHROPIC_API_KEY"], "ok", "anthropic-api"),
        ([], "ambiguous_model", None),
    ],
)
def test_registry_lookup_shows_candidates_and_why_one_won(
    auth_env: list[str], outcome: str, winner: str | None
) -> None:
    flags = [flag for name in auth_env for flag in ("--auth-env", name)]
    result = run("registry", "lookup", "opus", "--runtime", "claude-code", *flags)
    assert result.returncode == 0, result.stderr
    assert f"outcome {outcome}" in result.stdout
    assert "anthropic-api" in result.stdout
    assert "anthropic-oauth" in result.stdout
    if winner is None:
        assert "tied" in result.stdout
    else:
        assert f"provider: {winner}" in result.stdout
        assert "won" in result.stdout
