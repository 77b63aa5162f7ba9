"""``provision-env --format shell|env-file``: hostile values from every source come out exactly.

Every value is stored for real (SQLite and PostgreSQL, through the service layer) and
provisioned through the real console script. ``shell`` output is sourced by bash
(``set -a; . FILE``) in a folder where any command that ran would leave a canary file;
``env-file`` output is read the way ``docker run --env-file`` reads it (docker's own client
too, against a stand-in daemon on a unix socket that keeps what it is sent). A value a format
cannot carry is ENV_VALUE_UNREPRESENTABLE naming the variable, never the value, with nothing
printed and nothing recorded.
"""

from __future__ import annotations

import http.server
import json
import shutil
import socketserver
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml
from tests.cli.cli_runner import SCRIPT, SENTINEL, Cli
from tests.store.db_fixtures import KEY_RING_TEXT, ContextFactory, stored_workspace

from llmbilling.cli.provision_command import (
    ENV_FILE_MAX_LINE_BYTES,
    EnvFormat,
    check_representable,
)
from llmbilling.errors import EnvValueUnrepresentableError
from llmbilling.service.context import ServiceContext
from llmbilling.store.provisions import latest_provision_mode

BASH = shutil.which("bash") or "/bin/bash"
CANARY = "pwned"
# Values a shell would run, expand or split, and that docker must keep literally.
HOSTILE = {
    "command-substitution": f"$(touch {CANARY})",
    "backticks": f"`touch {CANARY}`",
    "single-quote-breakout": f"'; touch {CANARY}; '",
    "double-quote-breakout": f'"; touch {CANARY}; "',
    "escaped-quote-breakout": f"\\'; touch {CANARY}; #",
    "old-escaper-breakout": f"\\`touch {CANARY}`\\",
    "backslashes": "a\\b\\\\c\\",
    "variables": "$HOME ${PATH} $0 $$",
    "history-and-globs": "!! * ? [a] ~root {a,b}",
    "operators": f"x | touch {CANARY} & touch {CANARY}; touch {CANARY} > {CANARY}",
    "unicode": "ünïcødé ☃ 🙂 \u202e\u00a0x",
    "equals-signs": "a=b==c",
    "leading-hash": "#not a comment",
    "inline-hash": "value # not a comment",
    "tab": "a\tb",
    "quotes-only": "''\"\"",
}
# Leading and trailing white space survives in a secret (the model text is stored trimmed).
HOSTILE_SECRETS_ONLY = {"leading-space": "  value", "trailing-space": "value  "}
# What env-file cannot carry; shell carries the newline and CR ones, no format carries NUL
# into a process env.
UNCARRIABLE = {
    "newline": f"{SENTINEL}\n{SENTINEL}",
    "heredoc": f"<<EOF\ntouch {CANARY}\nEOF",
    "carriage-return": f"{SENTINEL}\r{SENTINEL}",
    "trailing-carriage-return": f"{SENTINEL}\r",
    "nul": f"{SENTINEL}\x00{SENTINEL}",
}
# A model text goes through other code (trimmed, persisted, a column of its own), not through
# another renderer: the values most likely to break out stand for the rest.
HOSTILE_MODELS = (
    "command-substitution",
    "backticks",
    "single-quote-breakout",
    "old-escaper-breakout",
    "variables",
)
CARRIED_BY_SHELL = {name: value for name, value in UNCARRIABLE.items() if "\x00" not in value}
TEXT_FORMATS = (EnvFormat.SHELL, EnvFormat.ENV_FILE)
SECRET_SOURCES = ("org-secret", "workspace-secret")
MODEL_SOURCES = ("workspace-model", "model-argument")
MODEL_ENV = "MODEL"
CREDENTIAL = {"OPENAI_API_KEY": "sk-credential"}


class StoreCli(Cli):
    """The console script on the session's database (either engine), with the service
    contexts' key ring, so it decrypts what the tests stored."""

    def __init__(self, folder: Path, database_url: str) -> None:
        super().__init__(folder)
        self.key_ring = KEY_RING_TEXT
        self.database_url = database_url

    def env(self) -> dict[str, str]:
        return {**super().env(), "LLMBILLING_DATABASE_URL": self.database_url}

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        # Cli.run reads text with universal newlines, which would turn a CR into a LF.
        assert stdin is None
        result = subprocess.run(
            [str(SCRIPT), *args],
            capture_output=True,
            env=self.env(),
            cwd=self.folder,
            check=False,
            timeout=60,
        )
        return subprocess.CompletedProcess(
            result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
        )


@pytest.fixture
def cli(tmp_path: Path, engine_url: str) -> StoreCli:
    return StoreCli(tmp_path, engine_url)


def _env_name(case: str) -> str:
    return "HOSTILE_" + case.upper().replace("-", "_")


def _secrets_workspace(context: ServiceContext, source: str, values: dict[str, str]) -> UUID:
    """A byok workspace holding each value as a secret of ``source``'s scope."""
    named = {_env_name(case): value for case, value in values.items()}
    org_secrets = named if source == "org-secret" else {}
    workspace_secrets = CREDENTIAL | ({} if source == "org-secret" else named)
    _, workspace_id = stored_workspace(
        context,
        override="byok",
        runtime="codex",
        model="gpt-5.5",
        org_secrets=org_secrets,
        workspace_secrets=workspace_secrets,
    )
    return workspace_id


def _provision(
    cli: StoreCli, context: ServiceContext, source: str, value: str, fmt: EnvFormat
) -> tuple[UUID, subprocess.CompletedProcess[str]]:
    """Provision a byok workspace whose model text (from ``source``) is ``value``."""
    stored_model = value if source == "workspace-model" else "gpt-5.5"
    _, workspace_id = stored_workspace(
        context, override="byok", runtime="codex", model=stored_model, workspace_secrets=CREDENTIAL
    )
    arguments = ["--model", value] if source == "model-argument" else []
    return workspace_id, cli.run(
        "provision-env", str(workspace_id), "--format", fmt.value, *arguments
    )


# --- reading the output as its consumer does ---------------------------------------------------


def _sourced(output: str, folder: Path) -> dict[str, str]:
    """What ``set -a; . FILE`` leaves in the env, in a clean bash started in ``folder``."""
    (folder / "ws.env").write_text(output, encoding="utf-8")
    result = subprocess.run(
        ["/usr/bin/env", "-i", BASH, "--noprofile", "--norc", "-c", "set -a; . ./ws.env; env -0"],
        cwd=folder,
        capture_output=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    entries = result.stdout.decode().split("\0")
    return dict(entry.split("=", 1) for entry in entries if entry)


def _docker_env_file(output: str) -> dict[str, str]:
    """docker's env-file rules (docker/cli opts/file.go): lines split at LF (one CR before it
    dropped), leading white space trimmed, blank lines and lines starting with '#' skipped,
    the rest split at the first '='; the value is kept as is: no quotes, no escapes."""
    env: dict[str, str] = {}
    for raw in output.split("\n"):
        line = raw.removesuffix("\r").lstrip()
        if not line or line.startswith("#"):
            continue
        name, separator, value = line.partition("=")
        assert separator, f"a line without '=': {line!r}"
        assert name, f"a line without a name: {line!r}"
        assert not any(space in name for space in " \t"), f"a name with white space: {name!r}"
        env[name] = value
    return env


class _CapturingDaemon(http.server.BaseHTTPRequestHandler):
    """Answers docker's ping, keeps the container-create body, then refuses it."""

    protocol_version = "HTTP/1.1"
    created: list[dict[str, Any]]

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Api-Version", "1.41")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self._reply(200, b"")

    def do_GET(self) -> None:
        self._reply(200, b"OK")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if "/containers/create" in self.path:
            self.created.append(json.loads(body))
        self._reply(400, b'{"message": "kept by the test daemon"}')

    def address_string(self) -> str:
        return "unix-socket"

    def log_message(self, format: str, *args: Any) -> None:
        return


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def docker_reads(tmp_path: Path) -> Iterator[Callable[[str], dict[str, str]]]:
    """Runs docker's own client (``docker run --env-file``) against a stand-in daemon and
    returns the env it would create the container with. Skips when docker is not installed."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client on this machine; the env-file parser test above still runs")
    created: list[dict[str, Any]] = []
    handler = type("Handler", (_CapturingDaemon,), {"created": created})
    socket_path = tmp_path / "docker.sock"
    server = _UnixServer(str(socket_path), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def read(output: str) -> dict[str, str]:
        env_file = tmp_path / "ws.env"
        env_file.write_text(output, encoding="utf-8")
        created.clear()
        result = subprocess.run(
            [docker, "-H", f"unix://{socket_path}", "run", "--env-file", str(env_file), "img"],
            capture_output=True,
            text=True,
            env={"DOCKER_CONFIG": str(tmp_path / "docker-config"), "PATH": "/usr/bin:/bin"},
            check=False,
            timeout=60,
        )
        assert len(created) == 1, result.stderr
        return dict(entry.split("=", 1) for entry in created[0]["Env"])

    yield read
    server.shutdown()
    server.server_close()


def _read(fmt: EnvFormat, output: str, folder: Path) -> dict[str, str]:
    return _sourced(output, folder) if fmt is EnvFormat.SHELL else _docker_env_file(output)


# --- hostile values come out exactly -----------------------------------------------------------


@pytest.mark.parametrize("fmt", TEXT_FORMATS, ids=str)
@pytest.mark.parametrize("source", SECRET_SOURCES)
def test_hostile_secret_values_read_back_exactly_and_run_nothing(
    cli: StoreCli, make_context: ContextFactory, tmp_path: Path, source: str, fmt: EnvFormat
) -> None:
    values = {**HOSTILE, **HOSTILE_SECRETS_ONLY}
    if fmt is EnvFormat.SHELL:
        values |= CARRIED_BY_SHELL
    workspace_id = _secrets_workspace(make_context(), source, values)

    output = cli.ok("provision-env", str(workspace_id), "--format", fmt.value)
    read = _read(fmt, output, tmp_path)

    assert {case: read.get(_env_name(case)) for case in values} == values
    assert not (tmp_path / CANARY).exists()


@pytest.mark.parametrize("fmt", TEXT_FORMATS, ids=str)
@pytest.mark.parametrize("source", MODEL_SOURCES)
@pytest.mark.parametrize("case", HOSTILE_MODELS)
def test_a_hostile_model_text_reads_back_exactly_and_runs_nothing(
    cli: StoreCli,
    make_context: ContextFactory,
    tmp_path: Path,
    case: str,
    source: str,
    fmt: EnvFormat,
) -> None:
    _, result = _provision(cli, make_context(), source, HOSTILE[case], fmt)
    assert result.returncode == 0, result.stderr

    assert _read(fmt, result.stdout, tmp_path)[MODEL_ENV] == HOSTILE[case]
    assert not (tmp_path / CANARY).exists()


def test_docker_itself_reads_the_env_file_as_written(
    cli: StoreCli,
    make_context: ContextFactory,
    docker_reads: Callable[[str], dict[str, str]],
) -> None:
    values = {**HOSTILE, **HOSTILE_SECRETS_ONLY}
    workspace_id = _secrets_workspace(make_context(), "workspace-secret", values)
    output = cli.ok("provision-env", str(workspace_id), "--format", "env-file")

    read = docker_reads(output)

    assert {case: read.get(_env_name(case)) for case in values} == values
    assert read == _docker_env_file(output)


@pytest.mark.parametrize("fmt", [EnvFormat.JSON, EnvFormat.K8S], ids=str)
def test_json_and_k8s_carry_every_value(
    cli: StoreCli, make_context: ContextFactory, fmt: EnvFormat
) -> None:
    values = {**HOSTILE, **HOSTILE_SECRETS_ONLY, **UNCARRIABLE}
    workspace_id = _secrets_workspace(make_context(), "workspace-secret", values)
    output = cli.ok("provision-env", str(workspace_id), "--format", fmt.value)

    env = (
        json.loads(output)["env"] if fmt is EnvFormat.JSON else yaml.safe_load(output)["stringData"]
    )

    assert {case: env.get(_env_name(case)) for case in values} == values


# --- what a format cannot carry is refused, naming the variable --------------------------------


def _refusals(fmt: EnvFormat) -> list[str]:
    return sorted(set(UNCARRIABLE) - {"heredoc"}) if fmt is EnvFormat.ENV_FILE else ["nul"]


def _assert_refused(
    result: subprocess.CompletedProcess[str], variable: str, fmt: EnvFormat
) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("llmbilling: error: ENV_VALUE_UNREPRESENTABLE: --format: env var ")
    assert f" {variable} holds " in line
    assert f"which {fmt.value} cannot carry" in line
    assert SENTINEL not in result.stderr


def _nothing_recorded(context: ServiceContext, workspace_id: UUID) -> bool:
    with context.store.engine.connect() as connection:
        return latest_provision_mode(connection, workspace_id) is None


@pytest.mark.parametrize(
    ("fmt", "case"),
    [(fmt, case) for fmt in TEXT_FORMATS for case in _refusals(fmt)],
    ids=str,
)
@pytest.mark.parametrize("source", SECRET_SOURCES)
def test_a_secret_value_the_format_cannot_carry_is_refused_naming_the_variable(
    cli: StoreCli, make_context: ContextFactory, source: str, fmt: EnvFormat, case: str
) -> None:
    context = make_context()
    workspace_id = _secrets_workspace(context, source, {case: UNCARRIABLE[case]})

    result = cli.run("provision-env", str(workspace_id), "--format", fmt.value)

    _assert_refused(result, _env_name(case), fmt)
    assert _nothing_recorded(context, workspace_id)


@pytest.mark.parametrize("source", MODEL_SOURCES)
@pytest.mark.parametrize("case", ["newline", "carriage-return"])
def test_a_model_text_env_file_cannot_carry_is_refused_and_nothing_is_recorded(
    cli: StoreCli, make_context: ContextFactory, source: str, case: str
) -> None:
    context = make_context()
    workspace_id, result = _provision(cli, context, source, UNCARRIABLE[case], EnvFormat.ENV_FILE)

    _assert_refused(result, MODEL_ENV, EnvFormat.ENV_FILE)
    assert _nothing_recorded(context, workspace_id)
    shown = cli.ok("workspace", "show", str(workspace_id), "--json")
    assert json.loads(shown)["workspace"]["model"] == (
        "gpt-5.5" if source == "model-argument" else UNCARRIABLE[case].strip()
    )


@pytest.mark.parametrize(
    ("env", "fmt", "holds", "carried_by"),
    [
        ({"A": "x\ny"}, EnvFormat.ENV_FILE, "a newline", ("json", "shell", "k8s")),
        ({"A": "x\x00y"}, EnvFormat.SHELL, "a NUL character", ("json", "k8s")),
        ({"A B": "x"}, EnvFormat.SHELL, "a name that is not a plain identifier", ("json", "k8s")),
        (
            {"A": "x" * (ENV_FILE_MAX_LINE_BYTES - 1)},
            EnvFormat.ENV_FILE,
            f"a line longer than docker reads ({ENV_FILE_MAX_LINE_BYTES} bytes)",
            ("json", "shell", "k8s"),
        ),
    ],
)
def test_the_refusal_names_the_variable_and_the_formats_that_carry_it(
    env: dict[str, str], fmt: EnvFormat, holds: str, carried_by: tuple[str, ...]
) -> None:
    with pytest.raises(EnvValueUnrepresentableError) as raised:
        check_representable(env, fmt)

    (variable,) = env
    assert (raised.value.variable, raised.value.allowed) == (variable, carried_by)
    assert raised.value.message.startswith(f"--format: env var {variable} holds {holds}, ")


def test_the_longest_line_docker_reads_is_written() -> None:
    check_representable({"A": "x" * (ENV_FILE_MAX_LINE_BYTES - 2)}, EnvFormat.ENV_FILE)


def test_dotenv_is_no_format_any_more(tmp_path: Path) -> None:
    result = Cli(tmp_path).run("provision-env", str(UUID(int=1)), "--format", "dotenv")
    assert result.returncode == 2
    assert "'dotenv' is not one of 'json', 'shell', 'env-file', 'k8s'" in result.stderr
