"""Finding organizations and workspaces: the org listing in keyset pages, an org named where
an id is asked, and the console's search.

Names match ignoring case: an exact name picks an org, a search matches name prefixes (what
the ``lower(name)`` indexes serve; a substring match would scan the fleet). ``only`` is the
org a tenant's token is bound to: with it, nothing outside that org is ever found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from llmbilling.errors import InvalidInputError, OrgNotFoundError
from llmbilling.service.context import ServiceContext, reading
from llmbilling.store import console_views
from llmbilling.store import orgs as stored_orgs
from llmbilling.store.console_views import WorkspaceMatch
from llmbilling.store.engine import Connection
from llmbilling.store.orgs import OrgPage, OrgSummary

__all__ = [
    "CANDIDATES_SHOWN",
    "OrgPage",
    "OrgSummary",
    "SearchHit",
    "SearchResults",
    "WorkspaceMatch",
    "list_orgs",
    "resolve_org",
    "search",
]

CANDIDATES_SHOWN = 5


def list_orgs(
    context: ServiceContext,
    *,
    only: UUID | None,
    after: UUID | None,
    limit: int,
) -> OrgPage:
    """Orgs by (name, id) after the org with id ``after`` (a page's ``next_after``), with
    their workspace counts; ``only`` restricts the listing to one org (a tenant's token).

    :class:`OrgNotFoundError` when no org ``only`` allows has the id ``after``: a cursor names
    a position only through an org that is there.
    """
    with reading(context) as connection:
        if after is not None and (
            only not in (None, after) or not stored_orgs.org_exists(connection, after)
        ):
            raise OrgNotFoundError(after)
        return stored_orgs.org_page(connection, only=only, after=after, limit=limit)


def _uuid_or_none(text: str) -> UUID | None:
    try:
        return UUID(text.strip())
    except ValueError:
        return None


def _candidates(found: list[OrgSummary]) -> str:
    """Up to :data:`CANDIDATES_SHOWN` orgs of ``found`` (fetched one beyond, to tell more)."""
    shown = ", ".join(f"{org.name!r} ({org.id})" for org in found[:CANDIDATES_SHOWN])
    return shown + (", and more" if len(found) > CANDIDATES_SHOWN else "")


def resolve_org(context: ServiceContext, text: str, *, field: str = "org") -> UUID:
    """The org ``text`` names: a UUID as given (whether an org has it is the caller's check),
    else the one org whose name is ``text`` ignoring case.

    :class:`InvalidInputError` naming ``field`` when no org or several have the name; the
    message lists up to :data:`CANDIDATES_SHOWN` candidates (for an unknown name, the orgs
    whose names start with it) with their ids.
    """
    as_id = _uuid_or_none(text)
    if as_id is not None:
        return as_id
    name = text.strip()
    if not name:
        raise InvalidInputError(field, "give an organization id or name")
    with reading(context) as connection:
        named = stored_orgs.orgs_named(
            connection, name, only=None, prefix=False, limit=CANDIDATES_SHOWN + 1
        )
        if len(named) == 1:
            return named[0].id
        if named:
            raise InvalidInputError(
                field,
                f"{len(named)} or more organizations are named {name!r}: " + _candidates(named),
            )
        similar = stored_orgs.orgs_named(
            connection, name, only=None, prefix=True, limit=CANDIDATES_SHOWN + 1
        )
    hint = f"; names starting so: {_candidates(similar)}" if similar else ""
    raise InvalidInputError(field, f"no organization is named {name!r}{hint}")


@dataclass(frozen=True, slots=True)
class SearchHit:
    """The one object an exact id names."""

    kind: Literal["org", "workspace"]
    id: UUID


@dataclass(frozen=True, slots=True)
class SearchResults:
    """What a search found: the object an exact id names, or name matches (each list at most
    the limit asked, by name)."""

    exact: SearchHit | None
    orgs: list[OrgSummary]
    workspaces: list[WorkspaceMatch]


def search(context: ServiceContext, text: str, *, only: UUID | None, limit: int) -> SearchResults:
    """Orgs and workspaces ``text`` names: an exact id (of an org, or of a workspace) is one
    hit; other text matches name prefixes, ignoring case. Nothing outside ``only`` is found."""
    wanted = text.strip()
    as_id = _uuid_or_none(wanted)
    with reading(context) as connection:
        if as_id is not None:
            return SearchResults(_exact_hit(connection, as_id, only), [], [])
        if not wanted:
            return SearchResults(None, [], [])
        return SearchResults(
            None,
            stored_orgs.orgs_named(connection, wanted, only=only, prefix=True, limit=limit),
            console_views.workspaces_named(connection, wanted.lower(), only=only, limit=limit),
        )


def _exact_hit(connection: Connection, found: UUID, only: UUID | None) -> SearchHit | None:
    if only in (None, found) and stored_orgs.org_exists(connection, found):
        return SearchHit("org", found)
    owner = console_views.workspace_org(connection, found)
    if owner is not None and only in (None, owner):
        return SearchHit("workspace", found)
    return None
