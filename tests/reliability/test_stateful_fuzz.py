"""Schemathesis' stateful mode: chains of calls along the OpenAPI links, in-process on SQLite.

The app serves a seeded store (a 40-workspace demo fleet, some overrides and org defaults set
through the API so the audit log has history) to an admin token. ``schema.as_state_machine()``
builds a Hypothesis rule-based state machine whose rules follow the links the document
declares (``llmbilling.api.links``): the org listing leads to an org's default and workspaces,
a workspace listing to its first workspace's decision, provision and audit entries, a decision
to a conditional override write (``If-Match`` from its ``ETag``) or a
provision, a listing to its first decision or its next page, a what-if to its job. Every
response is checked with schemathesis' default checks and the accepted statuses of the
contract fuzz (``tests/api/test_api_contract_fuzz.py``): no 5xx, every status declared, body,
headers and content type on the schema, positive data accepted, negative data rejected, no
route that ignores its token, a what-if job found right after it was started.

Scenarios also start from a workspace or an org that exists and from a what-if, besides
schemathesis' own starting points (the audit log, a provision of a random id): its heuristics
never start from ``POST /v1/whatif`` (its optional ``org_id`` looks like a foreign key nothing
produces) and a random id is always a 404, which ends the chain at once.

Bounded in CI (``SCENARIOS`` scenarios of at most ``STEPS`` calls). The long run:

    LLMBILLING_LONG_RUN=1 .venv/bin/pytest -s -p no:xdist tests/reliability/test_stateful_fuzz.py

runs 2,500 scenarios of up to 12 calls (about 20,000 calls, 4 minutes) and prints the calls,
statuses, conditional writes and links followed; it must follow every link of ``REQUIRED_CHAINS``
and see conditional writes both honoured and refused.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyStrategyDefinition
from hypothesis.stateful import Bundle, rule
from schemathesis import Case
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.stateful.state_machine import APIStateMachine, StepInput, StepOutput
from schemathesis.openapi import from_asgi
from schemathesis.specs.openapi.schemas import OpenApiSchema
from tests.api.test_api_contract_fuzz import (
    ACCEPTED_STATUSES,
    move_expiry_to_the_future,
    seeded_app,
)
from tests.reliability.long_run import LONG_RUN, report

from llmbilling.api.links import (
    AUDIT_PATH,
    DECISION_PATH,
    ORG_DEFAULT_PATH,
    ORG_WORKSPACES_PATH,
    ORGS_PATH,
    PLAN_APPLY_PATH,
    PLAN_APPROVE_PATH,
    PLAN_PATH,
    PROVISION_ENV_PATH,
    WHATIF_JOB_PATH,
    operation_ref,
)
from llmbilling.service import admin

SCENARIOS = 2_500 if LONG_RUN else 20
STEPS = 12 if LONG_RUN else 6

CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            # The contract fuzz's: a stale If-Match (412), a workspace that cannot be
            # provisioned as stored (409, 422) are answers, not rejections.
            "positive_data_acceptance": {"expected-statuses": ACCEPTED_STATUSES},
            # The one DELETE clears a workspace's override; the decision it clears it from
            # stays served (docs/API.md), so a 200 GET after it is the contract, not a
            # use-after-free.
            "use_after_free": {"enabled": False},
        },
        # Positive and negative data (one call in ten breaks its schema). The token is sent
        # with every call, so it is not a generated parameter, and a query parameter the
        # operation does not declare is ignored, as HTTP APIs do, not a violation.
        "generation": {"allow-extra-parameters": False, "with-security-parameters": False},
        # Only the links the document declares: an inferred link must not stand in for one
        # that stopped working.
        "phases": {"stateful": {"inference": {"algorithms": []}}},
    }
)

WHATIF_PATH = "/v1/whatif"
PLANS_PATH = "/v1/plans"
# (source method, source path, status, link name) -> (target method, target path)
DECLARED_LINKS = {
    ("GET", DECISION_PATH, "200", "SetOverride"): ("PUT", DECISION_PATH),
    ("GET", DECISION_PATH, "200", "ClearOverride"): ("DELETE", DECISION_PATH),
    ("GET", DECISION_PATH, "200", "ProvisionEnv"): ("POST", PROVISION_ENV_PATH),
    **{
        (method, DECISION_PATH, "200", name): target
        for method in ("PUT", "DELETE")
        for name, target in (
            ("ReadDecision", ("GET", DECISION_PATH)),
            ("SetOverride", ("PUT", DECISION_PATH)),
            ("ClearOverride", ("DELETE", DECISION_PATH)),
            ("ProvisionEnv", ("POST", PROVISION_ENV_PATH)),
        )
    },
    ("POST", PROVISION_ENV_PATH, "200", "ReadDecision"): ("GET", DECISION_PATH),
    ("POST", PROVISION_ENV_PATH, "200", "WorkspaceAudit"): ("GET", AUDIT_PATH),
    ("GET", ORG_DEFAULT_PATH, "200", "SetOrgDefault"): ("PUT", ORG_DEFAULT_PATH),
    ("GET", ORG_DEFAULT_PATH, "200", "ListOrgWorkspaces"): ("GET", ORG_WORKSPACES_PATH),
    ("GET", ORG_DEFAULT_PATH, "200", "OrgAudit"): ("GET", AUDIT_PATH),
    ("PUT", ORG_DEFAULT_PATH, "200", "ReadOrgDefault"): ("GET", ORG_DEFAULT_PATH),
    ("PUT", ORG_DEFAULT_PATH, "200", "SetOrgDefault"): ("PUT", ORG_DEFAULT_PATH),
    ("PUT", ORG_DEFAULT_PATH, "200", "ListOrgWorkspaces"): ("GET", ORG_WORKSPACES_PATH),
    ("PUT", ORG_DEFAULT_PATH, "200", "OrgAudit"): ("GET", AUDIT_PATH),
    ("GET", ORG_WORKSPACES_PATH, "200", "ReadFirstDecision"): ("GET", DECISION_PATH),
    ("GET", ORG_WORKSPACES_PATH, "200", "ProvisionFirstWorkspace"): ("POST", PROVISION_ENV_PATH),
    ("GET", ORG_WORKSPACES_PATH, "200", "FirstWorkspaceAudit"): ("GET", AUDIT_PATH),
    ("GET", ORG_WORKSPACES_PATH, "200", "NextPage"): ("GET", ORG_WORKSPACES_PATH),
    ("GET", ORG_WORKSPACES_PATH, "200", "ReadOrgDefault"): ("GET", ORG_DEFAULT_PATH),
    ("GET", ORGS_PATH, "200", "ListFirstOrgWorkspaces"): ("GET", ORG_WORKSPACES_PATH),
    ("GET", ORGS_PATH, "200", "ReadFirstOrgDefault"): ("GET", ORG_DEFAULT_PATH),
    ("GET", ORGS_PATH, "200", "NextPage"): ("GET", ORGS_PATH),
    ("GET", AUDIT_PATH, "200", "NextPage"): ("GET", AUDIT_PATH),
    ("POST", WHATIF_PATH, "202", "ReadJob"): ("GET", WHATIF_JOB_PATH),
    ("GET", WHATIF_JOB_PATH, "200", "PollJob"): ("GET", WHATIF_JOB_PATH),
    **{
        (method, path, status, name): target
        for method, path, status, read_again in (
            ("POST", PLANS_PATH, "201", True),
            ("GET", PLANS_PATH, "200", True),
            ("GET", PLAN_PATH, "200", False),
            ("POST", PLAN_APPROVE_PATH, "200", False),
            ("POST", PLAN_APPLY_PATH, "200", False),
        )
        for name, target in (
            ("ApprovePlan", ("POST", PLAN_APPROVE_PATH)),
            ("ApplyPlan", ("POST", PLAN_APPLY_PATH)),
            *((("ReadPlan", ("GET", PLAN_PATH)),) if read_again else ()),
        )
    },
}
# The chains the issue asked for; the long run must follow each of them.
REQUIRED_CHAINS = {
    ("GET", DECISION_PATH, "200", "SetOverride"),
    ("GET", DECISION_PATH, "200", "ClearOverride"),
    ("GET", DECISION_PATH, "200", "ProvisionEnv"),
    ("PUT", DECISION_PATH, "200", "ReadDecision"),
    ("GET", ORG_WORKSPACES_PATH, "200", "ReadFirstDecision"),
    ("GET", ORGS_PATH, "200", "ListFirstOrgWorkspaces"),
    ("GET", ORGS_PATH, "200", "ReadFirstOrgDefault"),
    ("GET", ORG_WORKSPACES_PATH, "200", "ProvisionFirstWorkspace"),
    ("GET", ORG_DEFAULT_PATH, "200", "SetOrgDefault"),
    ("POST", WHATIF_PATH, "202", "ReadJob"),
}


@dataclass(frozen=True)
class StatefulTarget:
    app: FastAPI
    schema: OpenApiSchema
    headers: dict[str, str]
    workspace_ids: tuple[str, ...]
    org_ids: tuple[str, ...]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StatefulTarget]:
    app, token = seeded_app(tmp_path_factory.mktemp("stateful"))
    context = app.state.context
    workspaces = [item.workspace for item in admin.list_workspaces(context, limit=100)]
    stateful = StatefulTarget(
        app=app,
        schema=from_asgi("/openapi.json", app, config=CONFIG),
        headers={"Authorization": f"Bearer {token}"},
        workspace_ids=tuple(str(workspace.id) for workspace in workspaces),
        org_ids=tuple(sorted({str(workspace.org_id) for workspace in workspaces})),
    )
    _write_some_history(stateful)
    yield stateful
    context.close()


def _write_some_history(target: StatefulTarget) -> None:
    """Overrides and org defaults set through the API, so the audit log names real objects."""
    set_override = target.schema[DECISION_PATH]["PUT"]
    for workspace_id, mode in zip(
        target.workspace_ids[:6], ["byok", "disabled", "platform_managed"] * 2, strict=True
    ):
        case = set_override.Case(
            path_parameters={"workspace_id": workspace_id}, body={"mode": mode}
        )
        assert case.call(headers=target.headers).status_code == 200
    set_default = target.schema[ORG_DEFAULT_PATH]["PUT"]
    for org_id, raw in zip(target.org_ids[:2], [" BYOK", "Platform_Managed"], strict=True):
        case = set_default.Case(path_parameters={"org_id": org_id}, body={"mode": raw})
        assert case.call(headers=target.headers).status_code == 200


# --- the declared links -----------------------------------------------------------------------


def _declared_links(app: FastAPI) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    found = {}
    for path, path_item in app.openapi()["paths"].items():
        for method, operation in path_item.items():
            for status, response in operation.get("responses", {}).items():
                for name, definition in response.get("links", {}).items():
                    found[(method.upper(), path, status, name)] = definition
    return found


def test_the_document_declares_every_link(target: StatefulTarget) -> None:
    declared = _declared_links(target.app)
    assert {key: definition["operationRef"] for key, definition in declared.items()} == {
        key: operation_ref(*target_operation) for key, target_operation in DECLARED_LINKS.items()
    }


def test_every_link_names_a_real_operation_and_its_parameters(target: StatefulTarget) -> None:
    document = target.app.openapi()
    for key, definition in _declared_links(target.app).items():
        (target_method, target_path) = DECLARED_LINKS[key]
        operation = document["paths"][target_path][target_method.lower()]
        parameters = {(p["in"], p["name"]) for p in operation.get("parameters", [])}
        assert definition["parameters"], key
        for name, expression in definition["parameters"].items():
            location, _, bare = name.rpartition(".")
            wanted = location or "path"
            assert (wanted, bare) in parameters, (key, name)
            assert expression.startswith(("$response.body#/", "$response.header.", "$request.")), (
                key,
                expression,
            )
            if expression.startswith("$request."):
                source_location, _, source_name = expression.removeprefix("$request.").partition(
                    "."
                )
                source = document["paths"][key[1]][key[0].lower()]
                source_parameters = {(p["in"], p["name"]) for p in source.get("parameters", [])}
                assert (source_location, source_name) in source_parameters, (key, expression)
        # A write's precondition comes from the ETag the source answer declares.
        if ("header", "If-Match") in parameters and any(
            n == "header.If-Match" for n in definition["parameters"]
        ):
            source_response = document["paths"][key[1]][key[0].lower()]["responses"][key[2]]
            assert "ETag" in source_response["headers"], key


# --- the stateful run -------------------------------------------------------------------------


@dataclass
class RunStats:
    scenarios: int = 0
    calls: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    operations: Counter[str] = field(default_factory=Counter)
    # Transition ids ("GET /path -> [200] Name -> PUT /path") whose values the call used.
    followed: Counter[str] = field(default_factory=Counter)


@dataclass
class TagLedger:
    """Each decision's and org default's current ``ETag``, as far as the run has seen it.

    The state machine is the store's only writer, so the tag of the latest 2xx answer for a
    resource is its current one until something else changes it: a provision (it may persist
    the model) for a workspace, an org default write for every decision. Then the ledger
    forgets it rather than guess. A write whose ``If-Match`` is a tag the run saw for that
    resource must be refused when that tag is stale and must not be a 412 when it is current.
    """

    current: dict[str, str] = field(default_factory=dict)
    seen: dict[str, set[str]] = field(default_factory=dict)
    honoured: int = 0
    refused: int = 0

    def observe(self, case: Case[Any], status: int, etag: str | None) -> None:
        method, path = case.operation.method.upper(), case.operation.path
        ok = 200 <= status < 300
        if path == PROVISION_ENV_PATH and ok:
            self.current.pop(_resource(DECISION_PATH, case), None)
        if path not in (DECISION_PATH, ORG_DEFAULT_PATH):
            return
        key = _resource(path, case)
        if method in ("PUT", "DELETE"):
            self._check_precondition(key, case, status)
        if not ok:
            return
        if etag is None:
            self.current.pop(key, None)
        else:
            self.current[key] = etag
            self.seen.setdefault(key, set()).add(etag)
        if path == ORG_DEFAULT_PATH and method == "PUT":
            # The org's row version is in every one of its decisions' tags.
            for other in [k for k in self.current if k.startswith(DECISION_PATH)]:
                del self.current[other]

    def _check_precondition(self, key: str, case: Case[Any], status: int) -> None:
        sent = dict(case.headers or {}).get("If-Match")
        if not isinstance(sent, str) or sent not in self.seen.get(key, ()):
            return
        if key not in self.current:
            return
        if sent == self.current[key]:
            assert status != 412, f"{case.operation.label} {key}: the current tag {sent} got a 412"
            self.honoured += 200 <= status < 300
        else:
            assert not 200 <= status < 300, (
                f"{case.operation.label} {key}: the stale tag {sent} (current"
                f" {self.current[key]}) was accepted with {status}"
            )
            self.refused += status == 412


def _resource(path: str, case: Case[Any]) -> str:
    parameters = case.path_parameters or {}
    name = "org_id" if path == ORG_DEFAULT_PATH else "workspace_id"
    return f"{path} {str(parameters.get(name)).lower()}"


def test_the_tag_ledger_catches_a_broken_precondition(target: StatefulTarget) -> None:
    workspace = {"workspace_id": target.workspace_ids[0]}
    read = target.schema[DECISION_PATH]["GET"].Case(path_parameters=workspace)
    write_with = target.schema[DECISION_PATH]["PUT"].Case
    ledger = TagLedger()
    ledger.observe(read, 200, '"w1.o1.aaaaaaaaaaaaaaaa"')
    current = write_with(
        path_parameters=workspace, headers={"If-Match": '"w1.o1.aaaaaaaaaaaaaaaa"'}
    )
    with pytest.raises(AssertionError, match="the current tag"):
        ledger.observe(current, 412, None)
    ledger.observe(current, 200, '"w2.o1.bbbbbbbbbbbbbbbb"')
    assert ledger.honoured == 1
    stale = write_with(path_parameters=workspace, headers={"If-Match": '"w1.o1.aaaaaaaaaaaaaaaa"'})
    with pytest.raises(AssertionError, match="the stale tag"):
        ledger.observe(stale, 200, '"w3.o1.cccccccccccccccc"')
    ledger.observe(stale, 412, None)
    assert ledger.refused == 1
    # After a provision the ledger no longer knows the current tag, so it judges nothing.
    provision = target.schema[PROVISION_ENV_PATH]["POST"].Case(path_parameters=workspace)
    ledger.observe(provision, 200, None)
    ledger.observe(stale, 200, '"w4.o1.dddddddddddddddd"')


def _workflow(target: StatefulTarget, stats: RunStats, ledger: TagLedger) -> type[APIStateMachine]:
    schema = target.schema
    base = schema.as_state_machine()
    # Schemathesis routes each answer to the bundle of its operation and status itself.
    answers: Bundle[StepOutput] = Bundle("catch_all")
    known_workspace = st.sampled_from(target.workspace_ids)
    known_org = st.sampled_from(target.org_ids)
    decision = schema[DECISION_PATH]["GET"]
    listing = schema[ORG_WORKSPACES_PATH]["GET"]
    whatif = schema[WHATIF_PATH]["POST"]
    read_known_decision = known_workspace.flatmap(
        lambda workspace_id: decision.as_strategy(path_parameters={"workspace_id": workspace_id})
    )
    list_known_org = known_org.flatmap(
        lambda org_id: listing.as_strategy(path_parameters={"org_id": org_id})
    )
    start_whatif = st.one_of(
        whatif.as_strategy(),
        # The JSON form of the proposal (the route also takes YAML: a body given without a
        # media type is ambiguous to schemathesis).
        known_org.flatmap(
            lambda org_id: whatif.as_strategy(
                body={"org_id": org_id}, media_type="application/json"
            )
        ),
    )

    class Workflow(base):  # type: ignore[misc, valid-type]
        def setup(self) -> None:
            stats.scenarios += 1

        def get_call_kwargs(self, case: Case[Any]) -> dict[str, Any]:
            return {"headers": dict(target.headers)}

        def before_call(self, case: Case[Any]) -> None:
            move_expiry_to_the_future(case)

        def step(self, input: StepInput) -> StepOutput:
            output: StepOutput = super().step(input)
            stats.calls += 1
            stats.statuses[output.response.status_code] += 1
            stats.operations[input.case.operation.label] += 1
            if input.transition is not None and input.is_applied:
                stats.followed[input.transition.id] += 1
            etags = output.response.headers.get("etag")
            ledger.observe(input.case, output.response.status_code, etags[0] if etags else None)
            return output

        def _start(self, case: Case[Any]) -> StepOutput:
            self.recorder.record_case(case=case)
            return self.step(StepInput.initial(case))

        @rule(target=answers, case=read_known_decision)
        def read_a_known_workspace(self, case: Case[Any]) -> StepOutput:
            return self._start(case)

        @rule(target=answers, case=list_known_org)
        def list_a_known_org(self, case: Case[Any]) -> StepOutput:
            return self._start(case)

        @rule(target=answers, case=start_whatif)
        def start_a_whatif(self, case: Case[Any]) -> StepOutput:
            return self._start(case)

    return Workflow


def _transition_id(key: tuple[str, str, str, str]) -> str:
    method, path, status, name = key
    target_method, target_path = DECLARED_LINKS[key]
    return f"{method} {path} -> [{status}] {name} -> {target_method} {target_path}"


def test_stateful_run_keeps_the_contract_along_the_links(target: StatefulTarget) -> None:
    stats, ledger = RunStats(), TagLedger()
    workflow = _workflow(target, stats, ledger)
    started = time.monotonic()
    restarts = 0
    while stats.scenarios < SCENARIOS:
        try:
            workflow.run(
                settings=settings(
                    workflow.TestCase.settings,
                    max_examples=SCENARIOS - stats.scenarios,
                    stateful_step_count=STEPS,
                )
            )
        except FlakyStrategyDefinition:
            # Hypothesis replayed a prefix of choices it had tried before and the API answered
            # differently: the store had changed since (that is the point of the run). Every
            # call so far was checked; go on with a fresh run, as schemathesis' own engine does.
            restarts += 1
            assert restarts <= SCENARIOS, "the run keeps restarting without progress"
            continue
        break
    elapsed = time.monotonic() - started
    report(
        f"stateful fuzz: {stats.scenarios} scenarios, {stats.calls} calls, 0 failures,"
        f" {elapsed:.1f} s ({restarts} restarts); statuses {dict(sorted(stats.statuses.items()))}"
    )
    report(
        f"conditional writes: {ledger.honoured} on the current tag written,"
        f" {ledger.refused} on a stale tag refused with 412"
    )
    report(f"operations called: {dict(sorted(stats.operations.items()))}")
    report(f"links followed: {sum(stats.followed.values())} times, {len(stats.followed)} links")
    for transition, count in sorted(stats.followed.items()):
        report(f"  {count:6d}  {transition}")
    assert stats.scenarios >= SCENARIOS
    assert stats.calls >= SCENARIOS
    assert not [status for status in stats.statuses if status >= 500]
    # The chains reached real objects: writes succeeded and answers fed later calls.
    assert stats.statuses[200] > 0
    assert stats.followed, "no declared link was ever followed"
    if LONG_RUN:
        missing = {key for key in REQUIRED_CHAINS if _transition_id(key) not in stats.followed}
        assert not missing, missing
        assert ledger.honoured > 0
        assert ledger.refused > 0
