"""OFREP as clients nobody here wrote see it, against a real ``llmbilling serve`` on both
engines (docs/OFREP.md):

- the stock Python provider (``openfeature-provider-ofrep`` with ``openfeature-sdk``, pinned in
  the lock file) and the stock JavaScript provider (``@openfeature/ofrep-provider`` with
  ``@openfeature/server-sdk`` on this machine's Node.js, installed from npm into a temporary
  directory at test time) get, for every seeded workspace and a pre-provision context, the
  mode the decision GET returns, and the provider and provisioning verdict it records;
- ``schemathesis run`` with the OFREP document (``openapi.yaml``, with its one correction,
  ``tests/api/ofrep_document.py``) as the schema finds nothing.

Bounded: a few workspaces, ``MAX_SECONDS`` of generation per engine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from openfeature import api as openfeature_api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from tests.api.ofrep_document import ofrep_document
from tests.environment import clean_environ
from tests.reliability.long_run import LONG_RUN, report
from tests.reliability.servers import ServerProcess, seed_store
from tests.store.db_fixtures import ENGINES, KEY_RING_TEXT, SAAS_PROXY, PostgresServer

from llmbilling.config.registry import built_in_registry
from llmbilling.core.decision import ResolutionInput
from llmbilling.core.ofrep import FLAG_KEYS, MODE_FLAG, PROVIDER_FLAG, WOULD_PROVISION_FLAG
from llmbilling.core.policy import CONTRACT_POLICY
from llmbilling.core.resolve import resolve_billing_mode
from llmbilling.service import admin, secrets
from llmbilling.service.audit import AuditContext
from llmbilling.service.context import DeploymentInputs, ServiceContext
from llmbilling.store.crypto import KeyRing
from llmbilling.store.engine import open_store

MAX_SECONDS = 120 if LONG_RUN else 25
NPM_PACKAGES = (
    "@openfeature/ofrep-provider@0.1.3",
    "@openfeature/ofrep-core@0.1.4",
    "@openfeature/server-sdk@1.23.0",
)
NPM_SECONDS = 300
WHO = AuditContext(actor="seed", request_id="seed")
# What a client answers when the server gave no value (its own default).
UNSET = "unset"
NO_PROVIDER = "no-provider"

JAVASCRIPT_CLIENT = r"""
const { OpenFeature } = require('@openfeature/server-sdk');
const { OFREPProvider } = require('@openfeature/ofrep-provider');
(async () => {
  const provider = new OFREPProvider({
    baseUrl: process.env.OFREP_BASE_URL,
    headers: [['Authorization', `Bearer ${process.env.OFREP_TOKEN}`]],
  });
  await OpenFeature.setProviderAndWait(provider);
  const client = OpenFeature.getClient();
  const answers = [];
  for (const context of JSON.parse(process.env.OFREP_CONTEXTS)) {
    answers.push({
      mode: await client.getStringDetails('llm-billing-mode', 'unset', context),
      provider: await client.getStringDetails('llm-billing-provider', 'no-provider', context),
      wouldProvision: await client.getBooleanDetails('llm-billing-would-provision', false, context),
    });
  }
  process.stdout.write(JSON.stringify(answers));
  await OpenFeature.close();
})().catch((error) => { console.error(error); process.exit(1); });
"""


@dataclass(frozen=True, repr=False)
class Served:
    server: ServerProcess
    token: str
    org_id: UUID
    workspace_ids: tuple[UUID, ...]

    def __repr__(self) -> str:
        return f"Served({self.server.base_url})"


def _seed(database_url: str) -> tuple[str, UUID, tuple[UUID, ...]]:
    """The reliability seed (codex/gpt-5.5 workspaces, an admin token), plus variety: an
    override, an org with a default, an unregistered model, a stored credential."""
    seeded = seed_store(database_url, workspaces=3)
    with ServiceContext(
        open_store(database_url),
        DeploymentInputs(proxy=SAAS_PROXY, org_default=None),
        built_in_registry(),
        key_ring_loader=lambda: KeyRing.parse(KEY_RING_TEXT),
    ) as context:
        admin.set_override(context, seeded.workspace_ids[0], "disabled", audit_context=WHO)
        second = admin.create_org(context, "second")
        admin.set_org_default(context, second.id, " Platform_Managed", audit_context=WHO)
        defaulted = admin.create_workspace(context, second.id, runtime="codex", model="gpt-5.5")
        unregistered = admin.create_workspace(
            context, seeded.org_id, runtime="claude-code", model="no-such-model"
        )
        provisionable = admin.create_workspace(
            context, second.id, runtime="claude-code", model="platform/claude-opus-4-7"
        )
        secrets.set_secret(context, "org", seeded.org_id, "OPENAI_API_KEY", "sk-test-value")
    ids = (*seeded.workspace_ids, defaulted.id, unregistered.id, provisionable.id)
    return seeded.token, seeded.org_id, ids


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('ofrep') / 'store.sqlite3'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[Served]:
    token, org_id, workspace_ids = _seed(database_url)
    server = ServerProcess(database_url, tmp_path)
    server.start()
    try:
        yield Served(server, token, org_id, workspace_ids)
    finally:
        server.stop()


@dataclass(frozen=True)
class Expected:
    mode: str
    provider: str
    would_provision: bool


def _expected(served: Served) -> list[tuple[dict[str, str], Expected]]:
    """Each context, and what the decision GET says it must get."""
    expected = []
    with httpx.Client(base_url=served.server.base_url, timeout=10.0) as client:
        headers = {"Authorization": f"Bearer {served.token}"}
        for workspace_id in served.workspace_ids:
            response = client.get(
                f"/v1/workspaces/{workspace_id}/llm-billing-mode", headers=headers
            )
            assert response.status_code == 200
            record = response.json()
            derived = record["derivation"]["outcome"] == "ok"
            expected.append(
                (
                    {"targetingKey": str(workspace_id)},
                    Expected(
                        record["mode"],
                        record["provider"] if derived else NO_PROVIDER,
                        record["provisioning"]["status"] == "ok",
                    ),
                )
            )
    # The pre-provision path, decided here by the core from what the seed stored: the seed
    # org has no default and one secret.
    decision = resolve_billing_mode(
        ResolutionInput(runtime="codex", model="gpt-5.5", auth_env=frozenset({"OPENAI_API_KEY"})),
        built_in_registry(),
        CONTRACT_POLICY,
    )
    pre_provision = {"orgId": str(served.org_id), "runtime": "codex", "model": "gpt-5.5"}
    provider = decision.provider if decision.derivation.outcome.value == "ok" else NO_PROVIDER
    expected.append(
        (
            pre_provision,
            Expected(decision.mode.value, provider or NO_PROVIDER, decision.provisioning.ok),
        )
    )
    return expected


def test_the_stock_python_provider_gets_the_decision_gets_answers(served: Served) -> None:
    token = served.token
    openfeature_api.set_provider(
        OFREPProvider(
            served.server.base_url, headers_factory=lambda: {"Authorization": f"Bearer {token}"}
        )
    )
    try:
        client = openfeature_api.get_client()
        for context, expected in _expected(served):
            attributes = {name: value for name, value in context.items() if name != "targetingKey"}
            evaluation_context = EvaluationContext(context.get("targetingKey"), attributes)
            mode = client.get_string_details(MODE_FLAG, UNSET, evaluation_context)
            provider = client.get_string_details(PROVIDER_FLAG, NO_PROVIDER, evaluation_context)
            would = client.get_boolean_details(WOULD_PROVISION_FLAG, False, evaluation_context)
            assert mode.error_code is None, (context, mode.error_message)
            assert (mode.value, provider.value, would.value) == (
                expected.mode,
                expected.provider,
                expected.would_provision,
            ), context
            assert mode.flag_metadata["source"]
    finally:
        openfeature_api.clear_providers()


@pytest.fixture(scope="module")
def javascript_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the stock JavaScript provider installed from npm and the client script."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        # CI installs them (.ci/run): there a missing Node.js is a failure, not a skip.
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but Node.js and npm are not installed", pytrace=False)
        pytest.skip("Node.js and npm are not installed on this machine")
    folder = tmp_path_factory.mktemp("ofrep-js")
    (folder / "package.json").write_text('{"name": "ofrep-check", "private": true}')
    try:
        installed = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--no-save", *NPM_PACKAGES],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=NPM_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"npm did not install {' '.join(NPM_PACKAGES)} within {NPM_SECONDS}s")
    if installed.returncode != 0:
        pytest.skip(f"npm cannot reach its registry here: {installed.stderr.strip()[-500:]}")
    (folder / "client.cjs").write_text(JAVASCRIPT_CLIENT)
    return folder


def test_the_stock_javascript_provider_gets_the_decision_gets_answers(
    served: Served, javascript_client: Path
) -> None:
    cases = _expected(served)
    env = clean_environ()
    env.update(
        OFREP_BASE_URL=served.server.base_url,
        OFREP_TOKEN=served.token,
        OFREP_CONTEXTS=json.dumps([context for context, _ in cases]),
    )
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run(
        [node, "client.cjs"],
        cwd=javascript_client,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    answers: list[dict[str, Any]] = json.loads(done.stdout)
    for (context, expected), answer in zip(cases, answers, strict=True):
        assert answer["mode"].get("errorCode") is None, (context, answer)
        assert (
            answer["mode"]["value"],
            answer["provider"]["value"],
            answer["wouldProvision"]["value"],
        ) == (expected.mode, expected.provider, expected.would_provision), context
        assert answer["mode"]["flagMetadata"]["source"]


def _cases(events: Path) -> int:
    """Test cases run, from schemathesis's NDJSON event stream."""
    cases = 0
    for line in events.read_text().splitlines() if events.exists() else []:
        for name, payload in json.loads(line).items():
            if name == "ScenarioFinished":
                cases += len(payload.get("recorder", {}).get("cases", {}))
    return cases


# Every schemathesis warning fails the run but ``validation_mismatch``: the document's own
# examples (and much generated data) send targetingKeys such as "user-123", which name no
# workspace, so the API answers them 400 INVALID_CONTEXT, as it must.
FAILING_WARNINGS = [
    "missing_auth",
    "missing_test_data",
    "base_url_mismatch",
    "missing_deserializer",
    "unused_openapi_auth",
    "unsupported_regex",
    "method_not_allowed",
    "constants_extraction",
    "unmatched_filter",
    "unresolvable_reference",
    "low_valid_rate",
    "rate_limited",
    "dictionary_mismatch",
    "timeout_units",
]


def _schemathesis_config(served: Served, folder: Path) -> Path:
    """Realistic values beside the generated ones: the flags served and the seeded ids (else
    nearly every case stops at FLAG_NOT_FOUND or an unknown target); every warning but one
    fails the run (:data:`FAILING_WARNINGS`)."""
    flags = json.dumps(list(FLAG_KEYS))
    targets = json.dumps([str(workspace_id) for workspace_id in served.workspace_ids])
    config = folder / "schemathesis.toml"
    config.write_text(
        f"warnings = {{ fail-on = {json.dumps(FAILING_WARNINGS)} }}\n"
        # The token through the document's own BearerAuth scheme (read from the environment).
        '[auth.openapi.BearerAuth]\nbearer = "${OFREP_TOKEN}"\n'
        f"[dictionaries.flags]\nvalues = {flags}\n"
        f"[dictionaries.workspaces]\nvalues = {targets}\n"
        "[parameters]\n"
        '"path.key" = { dictionary = "flags", probability = 0.8 }\n'
        '"body.context.targetingKey" = { dictionary = "workspaces", probability = 0.8 }\n'
    )
    return config


def test_schemathesis_with_the_ofrep_document_as_schema_finds_nothing(
    served: Served, tmp_path: Path
) -> None:
    schema = tmp_path / "ofrep-openapi.json"
    schema.write_text(json.dumps(ofrep_document()))
    events = tmp_path / "events.ndjson"
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(_schemathesis_config(served, tmp_path)),
        "run",
        str(schema),
        "--url",
        served.server.base_url,
        "--checks",
        "all",
        # positive_data_acceptance: a context the schema accepts (any targetingKey string)
        # may name no workspace of this store, and an unknown target is a context error
        # (400 INVALID_CONTEXT) by design. unsupported_method: the API answers OPTIONS on
        # every resource (RFC 9110 §9.3.7, api/problems.py), which the OFREP document does
        # not list, so its Allow names one method more than the document.
        "--exclude-checks",
        "positive_data_acceptance,unsupported_method",
        "--mode",
        "all",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-time",
        str(MAX_SECONDS),
        "--workers",
        "1",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(events),
        "--no-color",
    ]
    env = clean_environ()
    env["OFREP_TOKEN"] = served.token
    started = time.monotonic()
    done = subprocess.run(
        command,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=MAX_SECONDS * 3 + 120,
        check=False,
    )
    cases = _cases(events)
    report(
        f"schemathesis over the OFREP document on {served.server.database_url.split(':')[0]}:"
        f" {cases} cases, exit {done.returncode}, {time.monotonic() - started:.0f} s"
    )
    # The exit code counts every failure and warning; the token never reaches the output.
    assert done.returncode == 0, (done.stdout + done.stderr)[-20000:]
    assert cases > 0
