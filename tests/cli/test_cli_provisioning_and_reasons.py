"""``workspace show`` says what provisioning would do (item 1); override and org-default
writes take ``--reason`` and an override ``--expires-at`` (item 9). Real console script."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from tests.cli.cli_runner import Cli

from llmbilling.store.engine import open_store
from llmbilling.store.tables import audit_log


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def _reasons(cli: Cli) -> list[str | None]:
    store = open_store(cli.database_url)
    try:
        with store.engine.connect() as connection:
            rows = connection.execute(select(audit_log.c.after).order_by(audit_log.c.id))
            return [(after or {}).get("reason") for (after,) in rows]
    finally:
        store.close()


def test_workspace_show_names_the_credential_a_byok_provision_lacks(cli: Cli) -> None:
    org_id = cli.ok("org", "create", "acme").strip()
    workspace = cli.ok(
        "workspace",
        "create",
        "--org",
        org_id,
        "--runtime",
        "gemini-cli",
        "--model",
        "gemini-2.5-pro",
    ).strip()

    shown = cli.ok("workspace", "show", workspace)

    assert (
        "MISSING_BYOK_CREDENTIAL (provider google; set any of: GEMINI_API_KEY, GOOGLE_API_KEY)"
        in shown
    )
    assert cli.json("workspace", "show", workspace)["decision"]["provisioning"]["status"] == (
        "MISSING_BYOK_CREDENTIAL"
    )


def test_override_and_org_default_writes_keep_their_reason(cli: Cli) -> None:
    org_id = cli.ok("org", "create", "acme").strip()
    workspace = cli.ok("workspace", "create", "--org", org_id, "--model", "claude-opus-4-7").strip()

    cli.ok("org", "set-default", org_id, "byok", "--reason", "moving to own keys")
    cli.ok(
        "workspace",
        "set-override",
        workspace,
        "disabled",
        "--reason",
        "paused",
        "--expires-at",
        "2099-01-01T00:00:00Z",
    )

    assert _reasons(cli)[-2:] == ["moving to own keys", "paused"]
    assert cli.json("workspace", "show", workspace)["decision"]["source"] == "workspace_override"


def test_an_expiry_in_the_past_is_a_one_line_error_naming_expires_at(cli: Cli) -> None:
    org_id = cli.ok("org", "create", "acme").strip()
    workspace = cli.ok("workspace", "create", "--org", org_id).strip()

    result = cli.run(
        "workspace", "set-override", workspace, "byok", "--expires-at", "2001-01-01T00:00:00Z"
    )

    assert result.returncode != 0
    assert "expires_at: must be in the future" in result.stderr
