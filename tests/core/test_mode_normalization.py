"""Mode text normalization (spec §2 rung 2, docs/DECISIONS.md): an org default is trimmed of
ASCII white space and its ASCII letters lowercased, nothing more. A look-alike (KELVIN SIGN,
full-width letters), a Unicode space or a control character means the text is not a mode."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmbilling.core.decision import ResolutionInput
from llmbilling.core.modes import (
    ASCII_WHITE_SPACE,
    MODE_VALUES,
    BillingMode,
    normalize_mode_text,
    recognize_normalized_mode,
)
from llmbilling.core.registry import CompiledRegistry
from llmbilling.core.resolve import resolve_billing_mode
from llmbilling.errors import InvalidInputError
from llmbilling.service.admin import parse_org_default

RECOGNIZED = [
    pytest.param("byok", BillingMode.BYOK, id="exact"),
    pytest.param("BYOK", BillingMode.BYOK, id="upper-case"),
    pytest.param("  Platform_Managed\t", BillingMode.PLATFORM_MANAGED, id="space-and-tab"),
    pytest.param("\r\ndisabled\n", BillingMode.DISABLED, id="cr-lf"),
    pytest.param("\x0bbyok\x0c", BillingMode.BYOK, id="vertical-tab-form-feed"),
]

NOT_A_MODE = [
    pytest.param("BYO\u212a", id="kelvin-sign"),
    pytest.param("byo\u212a", id="kelvin-sign-lower"),
    pytest.param("D\u0130SABLED", id="dotted-capital-i"),
    pytest.param("\uff42\uff59\uff4f\uff4b", id="full-width-letters"),
    pytest.param("\u0432yok", id="cyrillic-ve"),
    pytest.param("\u00a0byok", id="no-break-space"),
    pytest.param("byok\u3000", id="ideographic-space"),
    pytest.param("\u2028byok", id="line-separator"),
    pytest.param("byok\x85", id="next-line"),
    pytest.param("\u200bbyok", id="zero-width-space"),
    pytest.param("byok\ufeff", id="byte-order-mark"),
    pytest.param("\x00byok", id="nul"),
    pytest.param("byok\x1b", id="escape"),
    pytest.param("\x1cbyok\x1f", id="c0-separators"),
    pytest.param("byok\x7f", id="delete"),
    pytest.param("by ok", id="space-inside"),
]


@pytest.mark.parametrize(("raw", "mode"), RECOGNIZED)
def test_ascii_white_space_and_ascii_case_are_normalized(raw: str, mode: BillingMode) -> None:
    assert recognize_normalized_mode(raw) is mode


@pytest.mark.parametrize("raw", NOT_A_MODE)
def test_a_look_alike_or_a_control_character_is_not_a_mode(raw: str) -> None:
    assert recognize_normalized_mode(raw) is None


@pytest.mark.parametrize("raw", NOT_A_MODE)
def test_an_org_default_with_a_look_alike_is_skipped_not_decided(
    raw: str, builtin: CompiledRegistry
) -> None:
    inputs = ResolutionInput(workspace_id="w", org_default=raw, runtime="codex", model="gpt-5.5")
    record = resolve_billing_mode(inputs, builtin).to_dict()
    assert record["org_default"] == {"raw": raw, "recognized": None}
    assert record["source"] != "org_default"
    org_rung = next(entry for entry in record["trace"] if entry["rung"] == "org_default")
    assert org_rung["status"] == "skipped"


@pytest.mark.parametrize("raw", NOT_A_MODE)
def test_an_admin_cannot_set_a_look_alike_org_default(raw: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        parse_org_default(raw)
    assert refused.value.field == "mode"
    assert refused.value.allowed == MODE_VALUES


def test_only_ascii_letters_are_lowercased() -> None:
    assert normalize_mode_text(" BYO\u212a\u00c9 ") == "byo\u212a\u00c9"


_UNSAFE = st.characters(codec="utf-8", exclude_characters=ASCII_WHITE_SPACE).filter(
    lambda c: ord(c) > 0x7E or ord(c) < 0x20
)
"""Any character that is not printable ASCII, ASCII white space aside."""


@given(
    word=st.sampled_from(MODE_VALUES).map(str.upper) | st.sampled_from(MODE_VALUES),
    unsafe=_UNSAFE,
    at=st.integers(min_value=0),
    around=st.text(alphabet=st.sampled_from(ASCII_WHITE_SPACE), max_size=2),
)
def test_text_with_a_non_ascii_or_control_character_is_never_a_mode(
    word: str, unsafe: str, at: int, around: str
) -> None:
    position = at % (len(word) + 1)
    text = around + word[:position] + unsafe + word[position:] + around
    assert recognize_normalized_mode(text) is None


@given(text=st.text())
def test_whatever_the_text_a_recognized_mode_is_its_ascii_normalization(text: str) -> None:
    mode = recognize_normalized_mode(text)
    if mode is not None:
        assert text.isascii()
        assert text.strip(" \t\n\r\v\f").lower() == mode.value
