"""API tokens: shown once, stored as a hash, scoped to one org unless admin, revocable, audited."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import select
from tests.store.db_fixtures import stored_workspace

from llmbilling.errors import InvalidInputError, OrgNotFoundError, TokenNotFoundError
from llmbilling.service.audit import AuditContext
from llmbilling.service.context import ServiceContext
from llmbilling.service.tokens import (
    SCOPE_VALUES,
    TOKEN_PREFIX,
    ActiveToken,
    RevokedToken,
    Scope,
    TokenStanding,
    create_token,
    hash_token,
    list_tokens,
    revoke_token,
    verify_token,
    verify_token_on_loop,
)
from llmbilling.store.tables import TOKEN_SCOPE_VALUES, api_tokens, audit_log


def test_the_scopes_are_the_ones_the_table_accepts() -> None:
    assert SCOPE_VALUES == TOKEN_SCOPE_VALUES


@pytest.mark.parametrize("scope", [Scope.ORG_ADMIN, Scope.PROVISIONER, Scope.VIEWER])
def test_an_org_token_verifies_to_its_scope_and_org(context: ServiceContext, scope: Scope) -> None:
    org_id, _ = stored_workspace(context)

    issued = create_token(context, scope=scope, org_id=org_id, name="ci")

    verified = verify_token(context, issued.token)
    assert isinstance(verified, ActiveToken)
    assert (verified.id, verified.scope, verified.org_id) == (issued.info.id, scope, org_id)


def test_a_token_is_256_random_bits_behind_a_prefix(context: ServiceContext) -> None:
    first = create_token(context, scope="admin").token
    second = create_token(context, scope="admin").token

    assert {first[: len(TOKEN_PREFIX)], second[: len(TOKEN_PREFIX)]} == {TOKEN_PREFIX}
    assert first != second
    assert len(first) - len(TOKEN_PREFIX) == 43  # 32 bytes, URL-safe base64 without padding


def test_only_the_hash_is_stored_and_nothing_shows_the_token_again(
    context: ServiceContext,
) -> None:
    issued = create_token(context, scope="admin")

    with context.store.read_engine.connect() as connection:
        stored = connection.execute(
            select(api_tokens).where(api_tokens.c.id == issued.info.id)
        ).one()
    assert stored.token_hash == hash_token(issued.token)
    assert issued.token not in str(tuple(stored))
    assert issued.token not in repr(issued)
    assert issued.token not in str([info.to_dict() for info in list_tokens(context)])


@pytest.mark.parametrize(
    "presented", ["", "llmb_", "not-ours", "llmb_" + "x" * 43, "llmb_" + "x" * 300]
)
def test_anything_but_an_issued_token_verifies_to_nothing(
    context: ServiceContext, presented: str
) -> None:
    assert verify_token(context, presented) is None


def _verified_on_loop(context: ServiceContext, token: str) -> TokenStanding:
    async def verify() -> TokenStanding:
        try:
            return await verify_token_on_loop(context, token)
        finally:
            await context.close_loop_reader()

    return asyncio.run(verify())


VERIFIERS: dict[str, Callable[[ServiceContext, str], TokenStanding]] = {
    "in a thread": verify_token,
    "on the event loop": _verified_on_loop,
}


@pytest.mark.parametrize("verify", list(VERIFIERS.values()), ids=list(VERIFIERS))
def test_a_revoked_token_verifies_as_revoked_not_as_unknown(
    context: ServiceContext, verify: Callable[[ServiceContext, str], TokenStanding]
) -> None:
    issued = create_token(context, scope="admin")
    revoke_token(context, issued.info.id)

    assert verify(context, issued.token) == RevokedToken(issued.info.id)
    assert verify(context, TOKEN_PREFIX + "x" * 43) is None


def test_a_revoked_token_stops_verifying_and_revoking_again_changes_nothing(
    context: ServiceContext,
) -> None:
    issued = create_token(context, scope="admin")
    who = AuditContext(actor="cli:test", request_id=str(uuid.uuid4()))

    revoked = revoke_token(context, issued.info.id, audit_context=who)
    again = revoke_token(context, issued.info.id, audit_context=who)

    assert not isinstance(verify_token(context, issued.token), ActiveToken)
    assert not revoked.active
    assert not again.active
    with context.store.read_engine.connect() as connection:
        actions = (
            connection.execute(
                select(audit_log.c.action).where(audit_log.c.request_id == who.request_id)
            )
            .scalars()
            .all()
        )
    assert actions == ["token.revoked"]


@pytest.mark.parametrize(
    ("scope", "with_org", "field"),
    [
        ("admin", True, "org_id"),
        ("viewer", False, "org_id"),
        ("org_admin", False, "org_id"),
        ("owner", False, "scope"),
        ("ADMIN", False, "scope"),
    ],
)
def test_a_token_needs_a_known_scope_and_an_org_exactly_when_not_admin(
    context: ServiceContext, scope: str, with_org: bool, field: str
) -> None:
    org_id, _ = stored_workspace(context)

    with pytest.raises(InvalidInputError) as raised:
        create_token(context, scope=scope, org_id=org_id if with_org else None)

    assert raised.value.field == field


def test_an_org_token_needs_an_existing_org(context: ServiceContext) -> None:
    with pytest.raises(OrgNotFoundError):
        create_token(context, scope="viewer", org_id=uuid.uuid4())


def test_revoking_an_unknown_token_is_not_found(context: ServiceContext) -> None:
    with pytest.raises(TokenNotFoundError):
        revoke_token(context, uuid.uuid4())


def test_creation_is_audited_with_scope_and_org_but_never_the_token(
    context: ServiceContext,
) -> None:
    org_id, _ = stored_workspace(context)
    who = AuditContext(actor="cli:test", request_id=str(uuid.uuid4()))

    issued = create_token(context, scope="viewer", org_id=org_id, name="dash", audit_context=who)

    with context.store.read_engine.connect() as connection:
        entry = connection.execute(
            select(audit_log).where(audit_log.c.request_id == who.request_id)
        ).one()
    assert (entry.action, entry.org_id) == ("token.created", org_id)
    assert entry.after == {
        "token_id": str(issued.info.id),
        "name": "dash",
        "scope": "viewer",
        "org_id": str(org_id),
    }
    assert issued.token not in str(tuple(entry))


def test_listing_by_org_shows_only_that_orgs_tokens(context: ServiceContext) -> None:
    org_id, _ = stored_workspace(context)
    mine = create_token(context, scope="viewer", org_id=org_id)
    create_token(context, scope="admin")

    assert [info.id for info in list_tokens(context, org_id=org_id)] == [mine.info.id]
