"""The provisioning verdict beside every decision agrees with provisioning itself (item 1).

A differential property: for random stored states on a real store (both engines), the
verdict the read path reports (``decision.provisioning``) is exactly what
``provision_workspace`` then does: ``ok`` when it succeeds, else the code of the error it
raises, with the same provider and satisfying names for a missing byok credential.
Credential values are never blank here: blank values are the one thing names alone cannot
tell (see docs/DECISIONS.md).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.store.db_fixtures import SAAS_PROXY, SELF_HOST, ContextFactory, stored_workspace

from llmbilling.core.decision import ProvisioningStatus
from llmbilling.errors import MissingByokCredentialError, ProvisionError
from llmbilling.service import admin
from llmbilling.service.context import ServiceContext
from llmbilling.service.provision import provision_workspace
from llmbilling.service.resolve import read_decision

MODES = ("platform_managed", "byok", "disabled")
CREDENTIALS = (
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "MINIMAX_API_KEY",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "GEMINI_API_KEY",
    "GITHUB_TOKEN",
)
MODEL_NAMES = ("claude-opus-4-7", "MiniMax-M2", "gpt-5.5", "gemini-2.5-pro", "no-such-model")
secret_sets = st.dictionaries(
    st.sampled_from(CREDENTIALS), st.sampled_from(("sk-1", "sk-2")), max_size=3
) | st.fixed_dictionaries(
    {},
    optional={
        "MOLECULE_MODEL": st.sampled_from(MODEL_NAMES),
        "MODEL": st.sampled_from(MODEL_NAMES),
    },
)
stored_states = st.fixed_dictionaries(
    {
        "self_host": st.booleans(),
        "org_default": st.sampled_from((None, *MODES, " BYOK ", "garbled")),
        "override": st.sampled_from((None, *MODES)),
        "expires": st.booleans(),
        "runtime": st.sampled_from(("claude-code", "codex", "gemini-cli", "hermes", "langgraph")),
        "model": st.sampled_from((None, *MODEL_NAMES, "platform/claude-opus-4-7")),
        "org_secrets": secret_sets,
        "workspace_secrets": secret_sets,
    }
)


def _provisioned(
    context: ServiceContext, workspace_id: UUID
) -> tuple[str, str | None, tuple[str, ...]]:
    """What provisioning did: ("ok", None, ()) or its error's code (and, for a missing byok
    credential, the provider and the names that would satisfy it)."""
    try:
        provision_workspace(context, workspace_id)
    except MissingByokCredentialError as error:
        return error.code.value, error.provider, error.satisfying_env
    except ProvisionError as error:
        return error.code.value, None, ()
    return ProvisioningStatus.OK.value, None, ()


def test_the_verdict_beside_a_decision_is_what_provisioning_does(
    make_context: ContextFactory,
) -> None:
    contexts = {True: make_context(proxy=SELF_HOST), False: make_context(proxy=SAAS_PROXY)}

    @given(state=stored_states)
    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    def agrees(state: dict[str, Any]) -> None:
        context = contexts[state["self_host"]]
        _, workspace_id = stored_workspace(
            context,
            org_default=state["org_default"],
            runtime=state["runtime"],
            model=state["model"],
            org_secrets=state["org_secrets"],
            workspace_secrets=state["workspace_secrets"],
        )
        if state["override"] is not None:
            expires_at = datetime.now(UTC) + timedelta(days=1) if state["expires"] else None
            admin.set_override(context, workspace_id, state["override"], expires_at=expires_at)

        verdict = read_decision(context, workspace_id).decision.provisioning
        assert (verdict.status.value, verdict.provider, verdict.satisfied_by) == _provisioned(
            context, workspace_id
        )

    agrees()


@pytest.mark.parametrize(
    ("self_host", "override", "model", "secrets", "status"),
    [
        (
            True,
            "platform_managed",
            "claude-opus-4-7",
            {},
            ProvisioningStatus.MISSING_PLATFORM_PROXY,
        ),
        (False, "platform_managed", "claude-opus-4-7", {}, ProvisioningStatus.OK),
        (False, "byok", "claude-opus-4-7", {}, ProvisioningStatus.MISSING_BYOK_CREDENTIAL),
        (False, "byok", "claude-opus-4-7", {"ANTHROPIC_API_KEY": "k"}, ProvisioningStatus.OK),
        (False, "disabled", None, {}, ProvisioningStatus.MISSING_MODEL),
        (True, "disabled", "claude-opus-4-7", {}, ProvisioningStatus.OK),
    ],
)
def test_each_stored_state_reports_the_verdict_provisioning_would_meet(
    make_context: ContextFactory,
    self_host: bool,
    override: str,
    model: str | None,
    secrets: dict[str, str],
    status: ProvisioningStatus,
) -> None:
    context = make_context(proxy=SELF_HOST if self_host else SAAS_PROXY)
    _, workspace_id = stored_workspace(
        context, override=override, model=model, workspace_secrets=secrets
    )
    assert read_decision(context, workspace_id).decision.provisioning.status is status
