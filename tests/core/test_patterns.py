"""Model patterns (the original system's anchored regexes) held as exact ids and prefixes."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmbilling.core.patterns import MAX_EXPANSIONS, PatternError, expand_pattern

# fmt: off
EXPRESSIBLE = [
    pytest.param("^claude", (), ("claude",), id="a-plain-prefix"),
    pytest.param("^(qwen|alibaba[:/])", (), ("alibaba/", "alibaba:", "qwen"),
                 id="alternation-and-class"),
    pytest.param("(?i)^minimax-m", (), ("minimax-m",), id="case-flag-is-accepted"),
    pytest.param("^(sonnet|opus|haiku)$", ("haiku", "opus", "sonnet"), (), id="exact-ids"),
    pytest.param("^deepseek[-:/]", (), ("deepseek-", "deepseek/", "deepseek:"),
                 id="class-with-dash"),
    pytest.param("^(minimax[:/]|codex-minimax-)", (), ("codex-minimax-", "minimax/", "minimax:"),
                 id="alternation-of-a-class-and-a-literal"),
    pytest.param(r"^gpt\-5\.5$", ("gpt-5.5",), (), id="escaped-punctuation"),
    pytest.param("^(?:a|b)(x|y)", (), ("ax", "ay", "bx", "by"), id="groups-multiply"),
    pytest.param("^(a$|b)", ("a",), ("b",), id="dollar-ends-one-branch"),
    pytest.param("^v[1-3]", (), ("v1", "v2", "v3"), id="a-small-range"),
    pytest.param("^GPT-", (), ("gpt-",), id="lowercased"),
]

NOT_EXPRESSIBLE = [
    pytest.param("gpt-", "must start with '^'", id="unanchored"),
    pytest.param("^gpt-.*", "'.' (any character)", id="any-character"),
    pytest.param("^gpt-?", "quantifier '?'", id="optional"),
    pytest.param("^(gpt|o)+", "quantifier '+'", id="quantified-group"),
    pytest.param("^gpt[0-9]{2}", "quantifier '{'", id="counted"),
    pytest.param(r"^gpt\d", "escape '\\d'", id="digit-class"),
    pytest.param("^[^x]", "negated character class", id="negated-class"),
    pytest.param("^(?=gpt)", "group extension", id="lookahead"),
    pytest.param("^a$b", "text after '$'", id="text-after-dollar"),
    pytest.param("^", "matches every model", id="empty-prefix"),
    pytest.param("^(a|)", "matches every model", id="empty-branch"),
    pytest.param("^$", "matches only the empty model", id="empty-exact"),
    pytest.param("^(gpt", "not a valid regular expression", id="not-a-regex"),
    pytest.param("^a^b", "'^' inside the pattern", id="caret-inside"),
    pytest.param("^" + "[ab]" * 9, f"more than {MAX_EXPANSIONS}", id="too-many-expansions"),
]
# fmt: on


@pytest.mark.parametrize(("pattern", "exact", "prefix"), EXPRESSIBLE)
def test_an_expressible_pattern_is_its_exact_ids_and_prefixes(
    pattern: str, exact: tuple[str, ...], prefix: tuple[str, ...]
) -> None:
    rules = expand_pattern(pattern)
    assert (rules.exact, rules.prefix) == (exact, prefix)


@pytest.mark.parametrize(("pattern", "reason"), NOT_EXPRESSIBLE)
def test_a_pattern_a_lookup_table_cannot_hold_is_refused_with_the_reason(
    pattern: str, reason: str
) -> None:
    with pytest.raises(PatternError) as caught:
        expand_pattern(pattern)
    assert reason in str(caught.value)


_PIECES = st.sampled_from(["a", "b", "-", ":", "/", "[:/]", "(x|yz)", r"\.", "(?:q|r)"])


@given(
    pieces=st.lists(_PIECES, min_size=1, max_size=4),
    closed=st.booleans(),
    tail=st.text(alphabet="abxyz-:/.", max_size=4),
)
def test_the_expansion_matches_exactly_what_the_regex_matches(
    pieces: list[str], closed: bool, tail: str
) -> None:
    pattern = "^" + "".join(pieces) + ("$" if closed else "")
    rules = expand_pattern(pattern)
    for text in rules.exact:
        assert re.fullmatch(pattern.removesuffix("$"), text)
    for prefix in rules.prefix:
        assert re.match(pattern, prefix + tail)
    probe = "".join(rules.exact or rules.prefix)[:3] + tail
    held = probe in rules.exact or any(probe.startswith(p) for p in rules.prefix)
    assert held == (re.match(pattern, probe) is not None)
