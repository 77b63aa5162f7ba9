"""Secrets: no plaintext secret value anywhere it should not be — the sentinel scan.

A fleet (three orgs, three workspaces each) stores a unique sentinel value in every credential
of both scopes; the deployment's proxy usage token, the bearer tokens and the key ring's key are
sentinels too. Then everything that could leak one is produced and scanned: the JSON logs of the
whole run; every API response (every operation of the OpenAPI document, checked against it, and
every console page and form); every decision record; the what-if report of the service
(document and the files ``--out`` writes) and of a real ``llmbilling whatif --out DIR --json``
process; and the database itself (the SQLite file and its WAL, or ``pg_dump`` output). The one
place values may appear is the ``env`` of a provision response, and there only the workspace's
own and its org's. Zero hits, on both engines.

Key rotation killed half-way: ``test_secrets_rotation_killed.py``.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url
from tests.environment import clean_environ
from tests.reliability.long_run import report
from tests.store.db_fixtures import DatabaseFactory

from llmbilling.api.app import create_app
from llmbilling.api.console.plan_pages import router as console_plan_router
from llmbilling.api.console.routes import router as console_router
from llmbilling.api.console.session import SESSION_COOKIE
from llmbilling.api.console.whatif_pages import router as console_whatif_router
from llmbilling.config.settings import Settings
from llmbilling.core.policy import compile_policy
from llmbilling.core.whatif import Configuration
from llmbilling.service import admin, secrets
from llmbilling.service.context import ServiceContext
from llmbilling.service.resolve import resolve_workspace
from llmbilling.service.tokens import Scope, create_token
from llmbilling.service.whatif import run_whatif
from llmbilling.service.whatif_report import proposal_of, report_document, write_report
from llmbilling.store import migrate
from llmbilling.store.crypto import KeyRing, SecretScopeName
from llmbilling.store.engine import open_store

SCRIPT = Path(sys.executable).with_name("llmbilling")
DROPS_ORG_RUNG = {"rungs": ["workspace_override", "derived_provider", "deployment_default"]}
JOB_DEADLINE_SECONDS = 60.0


# --- the scan -------------------------------------------------------------------------------------


@dataclass
class SentinelScan:
    """Counts what was scanned; records every sentinel found where it must not be."""

    sentinels: dict[str, str]  # value -> what it is (never printed in full)
    artifacts: int = 0
    scanned_bytes: int = 0
    log_lines: int = 0
    hits: list[str] = field(default_factory=list)

    def check(self, where: str, content: str | bytes) -> None:
        data = content.encode("utf-8", "surrogateescape") if isinstance(content, str) else content
        self.artifacts += 1
        self.scanned_bytes += len(data)
        for value, what in self.sentinels.items():
            if value.encode() in data:
                self.hits.append(f"{what} in {where}")


@dataclass(frozen=True)
class Fleet:
    org_ids: tuple[UUID, ...]
    workspace_ids: tuple[UUID, ...]
    org_of: dict[UUID, UUID]
    values_of_owner: dict[UUID, frozenset[str]]  # owner id -> its sentinel values


ORG_CREDENTIALS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GITHUB_TOKEN")
WORKSPACE_CREDENTIALS = (
    "OPENAI_API_KEY",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "MINIMAX_API_KEY",
    "DATABASE_PASSWORD",
)
# (runtime, model) per workspace of an org: byok, platform, and a model from a MODEL secret.
WORKSPACE_SHAPES = (
    ("codex", "gpt-5.5"),
    ("claude-code", "platform/claude-opus-4-7"),
    ("claude-code", None),
)


def store_fleet(context: ServiceContext, sentinels: dict[str, str]) -> Fleet:
    """Three orgs of three workspaces, every credential a fresh sentinel (recorded)."""
    org_ids: list[UUID] = []
    workspace_ids: list[UUID] = []
    org_of: dict[UUID, UUID] = {}
    values: dict[UUID, set[str]] = {}

    def put(scope: SecretScopeName, owner: UUID, name: str) -> None:
        value = f"sk-SENTINEL-{uuid.uuid4().hex}"
        sentinels[value] = f"{scope} secret {name}"
        values.setdefault(owner, set()).add(value)
        secrets.set_secret(context, scope, owner, name, value)

    for index in range(3):
        org = admin.create_org(context, f"sentinel-org-{index}")
        org_ids.append(org.id)
        if index == 1:
            admin.set_org_default(context, org.id, "byok")
        for name in ORG_CREDENTIALS:
            put("org", org.id, name)
        for runtime, model in WORKSPACE_SHAPES:
            workspace = admin.create_workspace(context, org.id, runtime=runtime, model=model)
            workspace_ids.append(workspace.id)
            org_of[workspace.id] = org.id
            for name in WORKSPACE_CREDENTIALS:
                put("workspace", workspace.id, name)
            if model is None:
                # Model names are not credentials: this one is read by every decision.
                secrets.set_secret(context, "workspace", workspace.id, "MODEL", "claude-opus-4-7")
    return Fleet(
        tuple(org_ids),
        tuple(workspace_ids),
        org_of,
        {owner: frozenset(found) for owner, found in values.items()},
    )


def database_dump(database_url: str) -> bytes:
    """The SQLite file and its WAL as bytes, or ``pg_dump``'s plain output."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        database = Path(url.database)
        files = [database, *database.parent.glob(database.name + "-*")]
        return b"".join(path.read_bytes() for path in files if path.exists())
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        pytest.skip("pg_dump is not installed")
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return subprocess.run(
        [pg_dump, "--no-owner", plain], check=True, capture_output=True, timeout=120
    ).stdout


class ApiWalk:
    """Calls routes and scans every answer (body and headers)."""

    def __init__(self, client: TestClient, scan: SentinelScan, fleet: Fleet) -> None:
        self.client = client
        self.scan = scan
        self.fleet = fleet
        self.walked: set[tuple[str, str]] = set()
        self.provisioned = 0
        self.env_values = 0  # sentinel values seen where they belong: the scan's control

    def call(
        self,
        method: str,
        template: str,
        url: str,
        *,
        expect: tuple[int, ...] = (200,),
        skip_headers: tuple[str, ...] = (),
        **options: Any,
    ) -> Any:
        response = self.client.request(method, url, **options)
        assert response.status_code in expect, (method, url, response.text[:500])
        self.walked.add((method, template))
        body = response.text
        if template == "/v1/workspaces/{workspace_id}/provision-env":
            body = self._without_env(url, response.json())
        self.scan.check(f"{method} {template}", body)
        headers = [f"{k}: {v}" for k, v in response.headers.items() if k not in skip_headers]
        self.scan.check(f"{method} {template} headers", "\n".join(headers))
        return response

    def _without_env(self, url: str, document: dict[str, Any]) -> str:
        """The one place values go: the env of a provision. Only the workspace's own and its
        org's values may be there; the rest of the answer is scanned like any other."""
        env: dict[str, str] = document.pop("env")
        workspace_id = UUID(url.split("/")[3])
        allowed = self.fleet.values_of_owner[workspace_id] | self.fleet.values_of_owner.get(
            self.fleet.org_of[workspace_id], frozenset()
        )
        for value in env.values():
            if value.startswith("sk-SENTINEL-"):
                assert value in allowed, "a provision env holds another tenant's secret"
                self.env_values += 1
        self.provisioned += 1
        return json.dumps(document)


def _wait_for_job(walk: ApiWalk, job_id: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_DEADLINE_SECONDS
    while True:
        job: dict[str, Any] = walk.call(
            "GET", "/v1/whatif/{job_id}", f"/v1/whatif/{job_id}", headers=headers
        ).json()
        if job["state"] in ("succeeded", "failed"):
            return job
        assert time.monotonic() < deadline, "the what-if job did not finish"
        time.sleep(0.05)


def walk_the_api(walk: ApiWalk, token: str) -> str:
    """Every /v1 operation (and the service routes) with the admin token; the what-if job id."""
    headers = {"Authorization": f"Bearer {token}", "X-Request-ID": "sentinel-walk"}
    fleet = walk.fleet
    org_id = fleet.org_ids[0]
    for workspace_id in fleet.workspace_ids:
        decision = f"/v1/workspaces/{workspace_id}/llm-billing-mode"
        walk.call(
            "GET", "/v1/workspaces/{workspace_id}/llm-billing-mode", decision, headers=headers
        )
        walk.call(
            "POST",
            "/v1/workspaces/{workspace_id}/provision-env",
            f"/v1/workspaces/{workspace_id}/provision-env",
            headers=headers,
            expect=(200, 409),
        )
    workspace_id = fleet.workspace_ids[0]
    decision = f"/v1/workspaces/{workspace_id}/llm-billing-mode"
    template = "/v1/workspaces/{workspace_id}/llm-billing-mode"
    walk.call("PUT", template, decision, headers=headers, json={"mode": "byok"})
    walk.call("DELETE", template, decision, headers=headers)
    org_default = f"/v1/orgs/{org_id}/llm-billing-mode-default"
    template = "/v1/orgs/{org_id}/llm-billing-mode-default"
    walk.call("GET", template, org_default, headers=headers)
    walk.call("PUT", template, org_default, headers=headers, json={"mode": " Platform_Managed"})
    walk.call(
        "GET", "/v1/orgs/{org_id}/workspaces", f"/v1/orgs/{org_id}/workspaces", headers=headers
    )
    walk.call("GET", "/v1/audit", "/v1/audit?limit=500", headers=headers)
    walk.call("GET", "/v1/orgs", "/v1/orgs", headers=headers)
    started = walk.call(
        "POST",
        "/v1/whatif",
        "/v1/whatif",
        headers=headers,
        json={"policy": DROPS_ORG_RUNG},
        expect=(202,),
    ).json()
    job = _wait_for_job(walk, started["id"], headers)
    assert job["state"] == "succeeded", job
    walk.call("GET", "/v1/whatif", "/v1/whatif", headers=headers)
    walk_the_plans(walk, headers, org_id)
    walk.call("GET", "/v1/deployment", "/v1/deployment", headers=headers)
    walk_ofrep(walk, headers, org_id)
    for path in ("/healthz", "/readyz", "/metrics"):
        walk.call("GET", path, path)
    # A refused token and a refused provision answer too.
    walk.call("GET", "/v1/audit", "/v1/audit", headers={"Authorization": "Bearer x"}, expect=(401,))
    return str(started["id"])


def walk_ofrep(walk: ApiWalk, headers: dict[str, str], org_id: UUID) -> None:
    """Every OFREP evaluation (docs/OFREP.md) of every workspace, and the pre-provision path.
    (The event stream carries no data but ``{"type": "refetchEvaluation"}``.)"""
    single = "/ofrep/v1/evaluate/flags/{key}"
    bulk = "/ofrep/v1/evaluate/flags"
    for workspace_id in walk.fleet.workspace_ids:
        body = {"context": {"targetingKey": str(workspace_id)}}
        for key in ("llm-billing-mode", "llm-billing-provider", "llm-billing-would-provision"):
            walk.call("POST", single, f"{bulk}/{key}", headers=headers, json=body)
        walk.call("POST", bulk, bulk, headers=headers, json=body)
    pre_provision = {"orgId": str(org_id), "runtime": "claude-code", "model": "claude-opus-4-7"}
    walk.call("POST", bulk, bulk, headers=headers, json={"context": pre_provision})


def walk_the_plans(walk: ApiWalk, headers: dict[str, str], org_id: UUID) -> None:
    """Preview, plan, read, list, approve (by a second token) and apply: a plan that sets a
    secret, whose value (a sentinel) travels only in the apply's body."""
    value = f"sk-SENTINEL-plan-{uuid.uuid4().hex}"
    walk.scan.sentinels[value] = "a secret value given to a plan's apply"
    context: ServiceContext = cast(FastAPI, walk.client.app).state.context
    second = create_token(context, scope=Scope.ADMIN).token
    walk.scan.sentinels[second] = "the approver's bearer token"
    change = {
        "change": {
            "kind": "secret",
            "scope": "org",
            "owner_id": str(org_id),
            "name": "PLANNED_TOKEN",
            "present": True,
        }
    }
    walk.call("POST", "/v1/plans/preview", "/v1/plans/preview", headers=headers, json=change)
    plan = walk.call(
        "POST", "/v1/plans", "/v1/plans", headers=headers, json=change, expect=(201,)
    ).json()
    url = f"/v1/plans/{plan['id']}"
    walk.call("GET", "/v1/plans", "/v1/plans", headers=headers)
    walk.call("GET", "/v1/plans/{plan_id}", url, headers=headers)
    walk.call(
        "POST",
        "/v1/plans/{plan_id}/approve",
        f"{url}/approve",
        headers={**headers, "Authorization": f"Bearer {second}"},
    )
    walk.call(
        "POST", "/v1/plans/{plan_id}/apply", f"{url}/apply", headers=headers, json={"value": value}
    )


def walk_the_console(walk: ApiWalk, token: str, job_id: str) -> set[tuple[str, str]]:
    """Every console page and form, signed in with the admin token."""
    fleet = walk.fleet
    workspace_id, org_id = fleet.workspace_ids[0], fleet.org_ids[0]
    origin = {"Origin": "http://testserver"}
    walk.call("GET", "/console/login", "/console/login")
    walk.call(
        "POST",
        "/console/login",
        "/console/login",
        data={"token": token},
        headers=origin,
        expect=(303,),
        follow_redirects=False,
        skip_headers=("set-cookie",),
    )
    # The login answer set the session cookie (a session secret, not the token).
    assert walk.client.cookies.get(SESSION_COOKIE)
    pages = {
        "/console/": "/console/",
        "/console/orgs/{org_id}": f"/console/orgs/{org_id}",
        "/console/workspaces/{workspace_id}": f"/console/workspaces/{workspace_id}",
        "/console/workspaces/{workspace_id}/override/set": (
            f"/console/workspaces/{workspace_id}/override/set?mode=byok"
        ),
        "/console/workspaces/{workspace_id}/override/clear": (
            f"/console/workspaces/{workspace_id}/override/clear"
        ),
        "/console/audit": "/console/audit",
        "/console/static/{name}": "/console/static/console.css",
        "/console/whatif": "/console/whatif",
        "/console/whatif/{job_id}": f"/console/whatif/{job_id}",
        "/console/whatif/{job_id}/report.html": f"/console/whatif/{job_id}/report.html",
        "/console/whatif/{job_id}/samples/{workspace_id}": (
            f"/console/whatif/{job_id}/samples/{workspace_id}"
        ),
        "/console/search": "/console/search?q=sentinel",
        "/console/orgs/{org_id}/default": f"/console/orgs/{org_id}/default",
    }
    for template, url in pages.items():
        walk.call("GET", template, url)
    version = walk.client.get(
        f"/v1/workspaces/{workspace_id}/llm-billing-mode",
        headers={"Authorization": f"Bearer {token}"},
    ).headers["etag"]
    for action, data in (("set", {"mode": "byok"}), ("clear", {})):
        template = f"/console/workspaces/{{workspace_id}}/override/{action}"
        walk.call(
            "POST",
            template,
            f"/console/workspaces/{workspace_id}/override/{action}",
            data={**data, "version": version},
            headers=origin,
            expect=(303,),
            follow_redirects=False,
        )
        version = walk.client.get(
            f"/v1/workspaces/{workspace_id}/llm-billing-mode",
            headers={"Authorization": f"Bearer {token}"},
        ).headers["etag"]
    # The plan confirmation: propose, show, approve (refused: the proposer's own), apply.
    proposed = walk.call(
        "POST",
        "/console/orgs/{org_id}/default/plan",
        f"/console/orgs/{org_id}/default/plan",
        data={"mode": "byok"},
        headers=origin,
        expect=(303,),
        follow_redirects=False,
    )
    plan_page = proposed.headers["location"]
    walk.call(
        "POST",
        "/console/workspaces/{workspace_id}/override/plan",
        f"/console/workspaces/{workspace_id}/override/plan",
        data={"mode": "byok", "reason": "sentinel scan"},
        headers=origin,
        expect=(303,),
        follow_redirects=False,
    )
    walk.call("GET", "/console/plans/{plan_id}", plan_page)
    walk.call(
        "POST",
        "/console/plans/{plan_id}/approve",
        f"{plan_page}/approve",
        headers=origin,
        expect=(409,),
        follow_redirects=False,
    )
    walk.call(
        "POST",
        "/console/plans/{plan_id}/apply",
        f"{plan_page}/apply",
        data={"reason": "sentinel scan"},
        headers=origin,
        expect=(303,),
        follow_redirects=False,
    )
    walk.call(
        "POST",
        "/console/whatif",
        "/console/whatif",
        data={"policy": json.dumps(DROPS_ORG_RUNG), "org": str(org_id)},
        headers=origin,
        expect=(303,),
        follow_redirects=False,
    )
    walk.call(
        "POST",
        "/console/logout",
        "/console/logout",
        headers=origin,
        expect=(303,),
        follow_redirects=False,
    )
    return {
        (method, route.path)
        for router in (console_router, console_whatif_router, console_plan_router)
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }


def run_cli_whatif(
    database_url: str, key_ring: str, usage_token: str, org_id: UUID, folder: Path
) -> tuple[str, list[Path]]:
    """``llmbilling whatif --out DIR --json`` as a separate process; its output and files."""
    policy = folder / "proposed-policy.yaml"
    policy.write_text(json.dumps(DROPS_ORG_RUNG))
    out = folder / "report"
    env = clean_environ()
    env.update(
        LLMBILLING_DATABASE_URL=database_url,
        LLMBILLING_SECRET_KEYS=key_ring,
        MOLECULE_LLM_BASE_URL="https://proxy.example/v1",
        MOLECULE_LLM_USAGE_TOKEN=usage_token,
    )
    result = subprocess.run(
        [
            str(SCRIPT),
            *("whatif", "--policy", str(policy), "--org", str(org_id)),
            *("--out", str(out), "--json"),
        ],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode in (0, 10), result.stderr  # 10: a danger class is non-empty
    assert json.loads(result.stdout)["total"] == len(WORKSPACE_SHAPES)
    return result.stdout + result.stderr, sorted(out.iterdir())


def test_no_plaintext_secret_anywhere_but_the_provisioned_env(
    new_database: DatabaseFactory, tmp_path: Path, captured_logs: io.StringIO
) -> None:
    database_url = new_database()
    key_ring = KeyRing.new_key_text(1)
    usage_token = f"usage-SENTINEL-{uuid.uuid4().hex}"
    sentinels: dict[str, str] = {
        usage_token: "the proxy usage token",
        key_ring.split(":", 1)[1]: "the key ring's key",
        base64.b64decode(key_ring.split(":", 1)[1]).hex(): "the key ring's key (hex)",
    }
    scan = SentinelScan(sentinels)
    store = open_store(database_url)
    migrate.upgrade(store)
    store.close()
    settings = Settings(
        database_url=database_url,
        secret_keys=key_ring,
        MOLECULE_LLM_BASE_URL="https://proxy.example/v1",
        MOLECULE_LLM_USAGE_TOKEN=usage_token,
    )
    app = create_app(settings)
    with TestClient(app) as client:
        context: ServiceContext = app.state.context
        fleet = store_fleet(context, sentinels)
        token = create_token(context, scope=Scope.ADMIN, name="scan").token
        viewer = create_token(context, scope=Scope.VIEWER, org_id=fleet.org_ids[0]).token
        sentinels[token] = "the admin bearer token"
        sentinels[viewer] = "a viewer bearer token"

        walk = ApiWalk(client, scan, fleet)
        job_id = walk_the_api(walk, token)
        served = {
            (method.upper(), path)
            for path, operations in client.get("/openapi.json").json()["paths"].items()
            for method in operations
        }
        assert served <= walk.walked, f"not scanned yet: {sorted(served - walk.walked)}"
        console_routes = walk_the_console(walk, token, job_id)
        assert console_routes <= walk.walked, sorted(console_routes - walk.walked)
        walk.call("GET", "/openapi.json", "/openapi.json")
        walk.call(
            "GET",
            "/v1/orgs/{org_id}/workspaces",
            f"/v1/orgs/{fleet.org_ids[0]}/workspaces",
            headers={"Authorization": f"Bearer {viewer}"},
        )

        # Decision records, listings and secret listings, straight from the service.
        for workspace_id in fleet.workspace_ids:
            scan.check(
                "decision record", json.dumps(resolve_workspace(context, workspace_id).to_dict())
            )
            listed_secrets = secrets.list_secrets(context, "workspace", workspace_id)
            scan.check("secret listing", json.dumps([info.to_dict() for info in listed_secrets]))
        for org_id in fleet.org_ids:
            listed = admin.list_workspaces(context, org_id=org_id, limit=100)
            scan.check("workspace listing", repr(listed))
            scan.check(
                "secret listing",
                json.dumps([s.to_dict() for s in secrets.list_secrets(context, "org", org_id)]),
            )

        # The service what-if: its document and the files --out writes.
        proposed = Configuration(compile_policy(DROPS_ORG_RUNG, "<proposed>"), context.registry)
        whatif = run_whatif(context, proposed)
        assert whatif.total == len(fleet.workspace_ids)
        proposal = proposal_of(Configuration(context.policy, context.registry), proposed)
        scan.check("service what-if report", json.dumps(report_document(whatif, proposal)))
        for path in write_report(whatif, proposal, tmp_path / "service-report"):
            scan.check(f"service what-if {path.name}", path.read_bytes())

    # The CLI what-if, a separate process on the same store.
    output, files = run_cli_whatif(database_url, key_ring, usage_token, fleet.org_ids[1], tmp_path)
    scan.check("llmbilling whatif output", output)
    for path in files:
        scan.check(f"llmbilling whatif --out {path.name}", path.read_bytes())

    logged = captured_logs.getvalue()
    scan.log_lines = len(logged.splitlines())
    scan.check("JSON logs", logged)
    dump = database_dump(database_url)
    scan.check("database dump", dump)

    # The control: the values were stored, decrypted and served where they belong, so the
    # same scan would have found them anywhere else.
    assert walk.provisioned == len(fleet.workspace_ids)
    assert walk.env_values > 0
    assert scan.log_lines > 50
    assert scan.hits == []
    engine = make_url(database_url).get_backend_name()
    report(
        f"sentinel scan on {engine}: {len(sentinels)} sentinels, {scan.artifacts} artifacts,"
        f" {scan.scanned_bytes:,} bytes ({len(dump):,} of database dump), {scan.log_lines} log"
        f" lines, {len(walk.walked)} routes walked; hits = {len(scan.hits)}"
    )
