"""Entity tags of the two writable resources, and ``If-Match`` as a caller sends it.

A decision's tag is ``"w<workspace row_version>.o<org row_version>.<record digest>"`` (see
:class:`~llmbilling.service.resolve.DecisionVersion`); an org default's is ``"o<row_version>"``.
Tags are strong: a weak tag (``W/"..."``) in ``If-Match`` never matches (RFC 9110 §13.1.1);
``If-None-Match`` compares weakly (§13.1.2), so ``W/"x"`` there matches ``"x"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmbilling.service.resolve import DecisionVersion

# RFC 9110 §8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, etagc = %x21 / %x23-7E, that
# is [!#-~] (obs-text is left out: a header is ASCII here). Our own tags are a subset of this.
ENTITY_TAG_PATTERN = r'(W/)?"[!#-~]*"'
ETAG_HEADER_PATTERN = f"^{ENTITY_TAG_PATTERN}$"
# If-Match and If-None-Match (§13.1.1, §13.1.2): "*" or a comma-separated list of entity tags.
# A header of another form is a 400 naming it, not a condition that merely fails.
CONDITION_HEADER_PATTERN = rf"^(\*|{ENTITY_TAG_PATTERN}([ \t]*,[ \t]*{ENTITY_TAG_PATTERN})*)$"

_DECISION_TAG = re.compile(r'^"w(\d{1,18})\.o(\d{1,18})\.([0-9a-f]{16})"$')
_ORG_TAG = re.compile(r'^"o(\d{1,18})"$')


def decision_etag(version: DecisionVersion) -> str:
    return f'"w{version.workspace_version}.o{version.org_version}.{version.record_digest}"'


def org_etag(row_version: int) -> str:
    return f'"o{row_version}"'


@dataclass(frozen=True, slots=True)
class IfMatch:
    """A conditional ``If-Match``: the listed tags as sent."""

    tags: tuple[str, ...]

    @classmethod
    def parse(cls, header: str | None) -> IfMatch | None:
        """None when the header sets no condition: absent, or ``*`` (any current version)."""
        if header is None:
            return None
        listed = tuple(tag.strip() for tag in header.split(",") if tag.strip())
        return None if listed == ("*",) else cls(listed)

    def decision_versions(self) -> list[DecisionVersion]:
        """The listed tags that are decision tags, as versions (others can never match)."""
        found = []
        for tag in self.tags:
            match = _DECISION_TAG.match(tag)
            if match:
                found.append(DecisionVersion(int(match[1]), int(match[2]), match[3]))
        return found

    def org_versions(self) -> list[int]:
        return [int(match[1]) for tag in self.tags if (match := _ORG_TAG.match(tag))]


def accepted_decision_versions(header: str | None) -> list[DecisionVersion] | None:
    """The decision versions a write conditioned by ``If-Match: header`` may find: None for no
    condition; an empty list when no listed tag can ever match."""
    if_match = IfMatch.parse(header)
    return None if if_match is None else if_match.decision_versions()


def accepted_org_versions(header: str | None) -> list[int] | None:
    """:func:`accepted_decision_versions` for an org default's tags."""
    if_match = IfMatch.parse(header)
    return None if if_match is None else if_match.org_versions()


def none_match(header: str | None, current: str) -> bool:
    """Whether ``If-None-Match: header`` names the current tag ``current`` (weak comparison,
    RFC 9110 §13.1.2; ``*`` matches any current representation): the GET then answers 304."""
    if header is None:
        return False
    listed = [tag.strip() for tag in header.split(",") if tag.strip()]
    if "*" in listed:
        return True
    return current.removeprefix("W/") in (tag.removeprefix("W/") for tag in listed)
