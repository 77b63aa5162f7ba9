"""Model patterns: the anchored regular expressions the original system matched models with,
turned into the exact ids and prefixes a compiled registry looks up. Pure.

Only the regular expressions that are a finite set of prefixes or exact ids in disguise are
accepted: ``^`` first (after an optional ``(?i)``), then literals, escaped punctuation,
character classes of literals, groups with ``|``, and ``$`` at the end of a branch.
``^(qwen|alibaba[:/])`` is the prefixes ``qwen``, ``alibaba:`` and ``alibaba/``;
``^(sonnet|opus)$`` the exact ids ``sonnet`` and ``opus``. Anything a lookup table cannot hold
(``.``, quantifiers, classes like ``\\d``, an unanchored start) is refused with the reason.
Matching is case-insensitive everywhere, so ``(?i)`` changes nothing and the results are
lowercased.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_EXPANSIONS = 256
"""A pattern may stand for at most this many exact ids and prefixes together."""

_CASE_INSENSITIVE_FLAG = "(?i)"
_QUANTIFIERS = frozenset("*+?{}")
# Escapes that stand for one literal character (punctuation); letters and digits after a
# backslash are classes (\d, \w) or anchors (\b), which a lookup table cannot hold.
_LITERAL_ESCAPES = frozenset("\\.-/:_[](){}|^$*+?")


class PatternError(ValueError):
    """The pattern is not a regular expression, or cannot be held as exact ids and prefixes."""


@dataclass(frozen=True, slots=True)
class PatternRules:
    """What a pattern stands for: exact ids (it ended in ``$``) and prefixes, lowercased,
    each sorted and without duplicates."""

    exact: tuple[str, ...]
    prefix: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Branch:
    text: str
    closed: bool
    """The branch ended in ``$``: nothing may follow, and its text is an exact id."""


def expand_pattern(pattern: str) -> PatternRules:
    """The exact ids and prefixes ``pattern`` matches. Raises :class:`PatternError`."""
    try:
        re.compile(pattern)
    except re.error as exc:
        raise PatternError(f"not a valid regular expression: {exc}") from None
    body = pattern.removeprefix(_CASE_INSENSITIVE_FLAG)
    if not body.startswith("^"):
        raise PatternError("must start with '^' (after an optional '(?i)'): unanchored patterns")
    parser = _Parser(body, 1)
    branches = parser.alternation()
    if parser.position != len(body):
        raise PatternError(f"unexpected {body[parser.position]!r} at offset {parser.position}")
    exact = sorted({b.text.lower() for b in branches if b.closed})
    prefix = sorted({b.text.lower() for b in branches if not b.closed})
    if "" in prefix:
        raise PatternError("matches every model (an empty prefix)")
    if "" in exact:
        raise PatternError("matches only the empty model")
    return PatternRules(tuple(exact), tuple(prefix))


class _Parser:
    """Recursive descent over the accepted subset, expanding as it goes."""

    def __init__(self, text: str, position: int) -> None:
        self.text = text
        self.position = position

    def alternation(self) -> list[_Branch]:
        branches = self.sequence()
        while self._peek() == "|":
            self.position += 1
            branches = branches + self.sequence()
            _check_size(branches)
        return branches

    def sequence(self) -> list[_Branch]:
        branches = [_Branch("", closed=False)]
        while (char := self._peek()) is not None and char not in "|)":
            if char == "$":
                self.position += 1
                branches = [_Branch(b.text, closed=True) for b in branches]
                continue
            if any(b.closed for b in branches):
                raise PatternError(f"text after '$' at offset {self.position}")
            pieces = self._atom()
            branches = [
                _Branch(b.text + piece.text, piece.closed) for b in branches for piece in pieces
            ]
            _check_size(branches)
        return branches

    def _atom(self) -> list[_Branch]:
        char = self.text[self.position]
        if char == "(":
            return self._group()
        if char == "[":
            return [_Branch(literal, closed=False) for literal in self._character_class()]
        if char == "\\":
            return [_Branch(self._escape(), closed=False)]
        if char == ".":
            raise PatternError(f"'.' (any character) at offset {self.position}")
        if char in _QUANTIFIERS:
            raise PatternError(f"quantifier {char!r} at offset {self.position}")
        if char == "^":
            raise PatternError(f"'^' inside the pattern at offset {self.position}")
        self.position += 1
        return [_Branch(char, closed=False)]

    def _group(self) -> list[_Branch]:
        self.position += 1
        if self.text.startswith("?:", self.position):
            self.position += 2
        elif self._peek() == "?":
            raise PatternError(f"group extension '(?' at offset {self.position - 1}")
        branches = self.alternation()
        if self._peek() != ")":
            raise PatternError(f"unclosed group at offset {self.position}")
        self.position += 1
        self._refuse_quantifier()
        return branches

    def _character_class(self) -> list[str]:
        start = self.position
        self.position += 1
        if self._peek() == "^":
            raise PatternError(f"negated character class at offset {start}")
        members: list[str] = []
        while (char := self._peek()) != "]":
            if char is None:
                raise PatternError(f"unclosed character class at offset {start}")
            literal = self._escape() if char == "\\" else self._take()
            if self._peek() == "-" and self.text[self.position + 1 : self.position + 2] not in (
                "]",
                "",
            ):
                self.position += 1
                end = self._escape() if self._peek() == "\\" else self._take()
                members.extend(chr(code) for code in range(ord(literal), ord(end) + 1))
            else:
                members.append(literal)
            if len(members) > MAX_EXPANSIONS:
                raise PatternError(f"character class at offset {start} is too large")
        self.position += 1
        self._refuse_quantifier()
        return list(dict.fromkeys(members))

    def _escape(self) -> str:
        escaped = self.text[self.position + 1 : self.position + 2]
        if escaped not in _LITERAL_ESCAPES or not escaped:
            raise PatternError(f"escape '\\{escaped}' at offset {self.position}")
        self.position += 2
        self._refuse_quantifier()
        return escaped

    def _take(self) -> str:
        char = self.text[self.position]
        self.position += 1
        return char

    def _refuse_quantifier(self) -> None:
        char = self._peek()
        if char is not None and char in _QUANTIFIERS:
            raise PatternError(f"quantifier {char!r} at offset {self.position}")

    def _peek(self) -> str | None:
        return self.text[self.position] if self.position < len(self.text) else None


def _check_size(branches: list[_Branch]) -> None:
    if len(branches) > MAX_EXPANSIONS:
        raise PatternError(f"stands for more than {MAX_EXPANSIONS} exact ids and prefixes")
