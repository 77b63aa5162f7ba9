"""No plaintext secret value in the database, the logs, a read API or a decision record."""

from __future__ import annotations

import logging
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from tests.store.db_fixtures import stored_workspace

from llmbilling.errors import InvalidInputError
from llmbilling.service import secrets
from llmbilling.service.context import ServiceContext
from llmbilling.service.provision import provision_workspace
from llmbilling.service.resolve import resolve_workspace
from llmbilling.store.tables import audit_log, provisions


def _database_dump(context: ServiceContext) -> bytes:
    url = context.store.url
    if context.store.dialect == "sqlite":
        assert url.database is not None
        database = Path(url.database)
        files = [database, *database.parent.glob(database.name + "-*")]
        return b"".join(path.read_bytes() for path in files if path.exists())
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        pytest.skip("pg_dump is not installed")
    plain = make_url(url.render_as_string(hide_password=False)).set(drivername="postgresql")
    return subprocess.run(
        [pg_dump, "--no-owner", plain.render_as_string(hide_password=False)],
        check=True,
        capture_output=True,
    ).stdout


def test_secret_values_appear_nowhere_but_the_provisioned_env(
    context: ServiceContext, caplog: pytest.LogCaptureFixture
) -> None:
    sentinel = f"SENTINEL-{uuid.uuid4().hex}"
    caplog.set_level(logging.DEBUG)
    org_id, workspace_id = stored_workspace(
        context,
        org_default="byok",
        org_secrets={"ANTHROPIC_API_KEY": f"org-{sentinel}", "MODEL": "claude-opus-4-7"},
        workspace_secrets={"OPENAI_API_KEY": f"ws-{sentinel}"},
        model=None,
    )
    secrets.set_secret(context, "workspace", workspace_id, "MINIMAX_API_KEY", f"new-{sentinel}")

    listed = [
        *(info.to_dict() for info in secrets.list_secrets(context, "org", org_id)),
        *(info.to_dict() for info in secrets.list_secrets(context, "workspace", workspace_id)),
    ]
    decision = resolve_workspace(context, workspace_id).to_dict()
    result = provision_workspace(context, workspace_id, request_model="claude-opus-4-7")
    with context.store.read_engine.connect() as connection:
        audit_rows = connection.execute(
            select(audit_log).where(audit_log.c.workspace_id == workspace_id)
        ).all()
        provision_rows = connection.execute(
            select(provisions).where(provisions.c.workspace_id == workspace_id)
        ).all()

    assert f"org-{sentinel}" in result.provision.env.values()  # the one place values go
    for shown in (
        listed,
        decision,
        result.public_summary(),
        repr(result.provision),
        audit_rows,
        provision_rows,
    ):
        assert sentinel not in str(shown)
    assert sentinel not in caplog.text
    assert sentinel.encode() not in _database_dump(context)


def test_a_model_kept_as_a_secret_is_listed_as_configuration_with_its_value(
    context: ServiceContext,
) -> None:
    sentinel = f"SENTINEL-{uuid.uuid4().hex}"
    org_id, workspace_id = stored_workspace(
        context,
        org_secrets={"MODEL": "claude-opus-4-7", "ANTHROPIC_API_KEY": f"org-{sentinel}"},
        workspace_secrets={"MOLECULE_MODEL": "claude-sonnet-4-6"},
        model=None,
    )
    listed = {
        info.name: info.to_dict()
        for scope, owner in (("org", org_id), ("workspace", workspace_id))
        for info in secrets.list_secrets(context, scope, owner)  # type: ignore[arg-type]
    }
    assert listed["MODEL"]["value"] == "claude-opus-4-7"
    assert listed["MOLECULE_MODEL"]["value"] == "claude-sonnet-4-6"
    assert "value" not in listed["ANTHROPIC_API_KEY"]
    assert sentinel not in str(listed)


@pytest.mark.parametrize("blank", ["", " ", "\t\n", "\u00a0"], ids=repr)
@pytest.mark.parametrize("scope", ["org", "workspace"])
def test_a_blank_secret_value_is_refused_and_nothing_is_stored(
    context: ServiceContext, scope: str, blank: str
) -> None:
    org_id, workspace_id = stored_workspace(context, model="claude-opus-4-7")
    owner = org_id if scope == "org" else workspace_id

    with pytest.raises(InvalidInputError) as refused:
        secrets.set_secret(context, scope, owner, "ANTHROPIC_API_KEY", blank)  # type: ignore[arg-type]

    assert refused.value.field == "value"
    assert secrets.list_secrets(context, scope, owner) == []  # type: ignore[arg-type]
