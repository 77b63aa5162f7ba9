"""A preview never lies: random sequences of changes over a real store (SQLite and
PostgreSQL), each previewed as a plan and applied, after which every workspace's decision,
read through the normal read path, is the preview's "after" (mode, source, provisioning) for
the workspaces it lists, and unchanged for every other one."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from tests.store.db_fixtures import SAAS_PROXY, SELF_HOST, ContextFactory

from llmbilling.core.changes import AnyChange
from llmbilling.service import admin, plans, secrets
from llmbilling.service.context import ServiceContext
from llmbilling.service.resolve import resolve_workspace

MODES = (None, "platform_managed", "byok", "disabled")
MODELS = ("kimi-for-coding", "claude-opus-4-7", None)
CREDENTIALS = ("KIMI_API_KEY", "ANTHROPIC_API_KEY")
Verdict = tuple[str, str, str]


def _verdict(context: ServiceContext, workspace_id: UUID) -> Verdict:
    decision = resolve_workspace(context, workspace_id)
    return (decision.mode.value, decision.source.value, decision.provisioning.status.value)


def _shown(verdict: dict[str, str]) -> Verdict:
    return (verdict["mode"], verdict["source"], verdict["provisioning"])


class PreviewThenApply(RuleBasedStateMachine):
    contexts: ClassVar[dict[bool, ServiceContext]]
    """The same database under a deployment with a proxy (True) and one without (False)."""

    def __init__(self) -> None:
        super().__init__()
        self.proxy = True
        self.org_ids: list[UUID] = []
        self.workspaces: list[UUID] = []
        self.secret_names: dict[tuple[str, UUID], set[str]] = {}

    @property
    def context(self) -> ServiceContext:
        return self.contexts[self.proxy]

    @initialize()
    def fleet(self) -> None:
        for index, default in enumerate(("platform_managed", None)):
            org = admin.create_org(self.context, f"stateful-{index}")
            self.org_ids.append(org.id)
            if default is not None:
                admin.set_org_default(self.context, org.id, default)
            for model in MODELS:
                workspace = admin.create_workspace(
                    self.context, org.id, runtime="claude-code", model=model
                )
                self.workspaces.append(workspace.id)

    def _check(
        self, change: AnyChange, *, deploy_proxy: bool | None = None, org: int | None = None
    ) -> None:
        # A fleet-wide change is checked on one of this machine's orgs (the database is
        # shared with other tests): its preview is narrowed to that org.
        scope = None if org is None else self.org_ids[org]
        watched = self.workspaces if org is None else self.workspaces[3 * org : 3 * org + 3]
        before = {workspace: _verdict(self.context, workspace) for workspace in watched}
        plan = plans.propose_plan(self.context, change, org_id=scope)
        assert plan.preview["impacts_complete"]
        if deploy_proxy is not None:  # the deploy: the running deployment is the proposed one
            self.proxy = deploy_proxy
        plans.apply_plan(self.context, plan.id, secret_value="sk-test-value")
        impacts = plan.preview["impacts"]
        after = {UUID(impact["workspace_id"]): _shown(impact["after"]) for impact in impacts}
        for impact in impacts:
            assert before[UUID(impact["workspace_id"])] == _shown(impact["before"])
        for workspace, old in before.items():
            assert _verdict(self.context, workspace) == after.get(workspace, old), workspace

    @rule(workspace=st.integers(0, 5), mode=st.sampled_from(MODES))
    def override(self, workspace: int, mode: str | None) -> None:
        self._check(plans.override_change(self.workspaces[workspace], mode))

    @rule(org=st.integers(0, 1), mode=st.sampled_from(MODES))
    def org_default(self, org: int, mode: str | None) -> None:
        self._check(plans.org_default_change(self.org_ids[org], mode))

    @rule(
        at_org=st.booleans(),
        owner=st.integers(0, 5),
        name=st.sampled_from(CREDENTIALS),
        present=st.booleans(),
    )
    def secret(self, at_org: bool, owner: int, name: str, present: bool) -> None:
        scope = "org" if at_org else "workspace"
        owner_id = self.org_ids[owner % 2] if at_org else self.workspaces[owner]
        self._check(plans.secret_change(scope, owner_id, name, present=present))

    @rule(org=st.integers(0, 1))
    def toggle_proxy(self, org: int) -> None:
        self._check(
            plans.deployment_change(proxy_configured=not self.proxy),
            deploy_proxy=not self.proxy,
            org=org,
        )

    @invariant()
    def every_secret_listing_is_readable(self) -> None:
        for org in self.org_ids:
            secrets.list_secrets(self.context, "org", org)


def test_every_applied_plan_leaves_exactly_its_previewed_decisions(
    make_context: ContextFactory,
) -> None:
    class OnThisDatabase(PreviewThenApply):
        contexts: ClassVar[dict[bool, ServiceContext]] = {
            True: make_context(proxy=SAAS_PROXY),
            False: make_context(proxy=SELF_HOST),
        }

    run_state_machine_as_test(
        OnThisDatabase,
        settings=settings(
            max_examples=12,
            stateful_step_count=8,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
