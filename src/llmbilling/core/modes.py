"""The closed vocabularies of a decision. Their values are wire strings (spec §1, §2)."""

from __future__ import annotations

import string
from enum import StrEnum


class BillingMode(StrEnum):
    PLATFORM_MANAGED = "platform_managed"
    BYOK = "byok"
    DISABLED = "disabled"


class DecisionSource(StrEnum):
    """Which rung decided the mode."""

    WORKSPACE_OVERRIDE = "workspace_override"
    ORG_DEFAULT = "org_default"
    DERIVED_PROVIDER = "derived_provider"
    DERIVED_DEFAULT = "derived_default"
    CONSTANT_FALLBACK = "constant_fallback"


class RungName(StrEnum):
    """The rungs of the precedence chain, in the order the contract consults them."""

    WORKSPACE_OVERRIDE = "workspace_override"
    ORG_DEFAULT = "org_default"
    DERIVED_PROVIDER = "derived_provider"
    DEPLOYMENT_DEFAULT = "deployment_default"


class RungStatus(StrEnum):
    DECIDED = "decided"
    SKIPPED = "skipped"
    FAILED = "failed"


class DerivationOutcome(StrEnum):
    OK = "ok"
    NO_MODEL = "no_model"
    UNKNOWN_RUNTIME = "unknown_runtime"
    UNREGISTERED_MODEL = "unregistered_model"
    AMBIGUOUS_MODEL = "ambiguous_model"
    REGISTRY_UNAVAILABLE = "registry_unavailable"
    NOT_ATTEMPTED = "not_attempted"


MODE_VALUES: tuple[str, ...] = tuple(mode.value for mode in BillingMode)
_MODES_BY_VALUE: dict[str, BillingMode] = {mode.value: mode for mode in BillingMode}


def recognize_mode(text: str | None) -> BillingMode | None:
    """The mode ``text`` spells exactly, else None. No trimming, no case folding."""
    if text is None:
        return None
    return _MODES_BY_VALUE.get(text)


ASCII_WHITE_SPACE = " \t\n\r\x0b\x0c"
"""The white space a mode text may carry around it: space, tab, LF, CR, VT and FF only."""
_ASCII_LOWERCASE = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def normalize_mode_text(text: str) -> str:
    """``text`` with :data:`ASCII_WHITE_SPACE` trimmed from both ends and ASCII letters
    lowercased; every other character is kept as it is.

    Deliberately not ``str.strip().lower()``: those also trim Unicode spaces and C0 separators
    and fold look-alikes onto ASCII (U+212A KELVIN SIGN lowercases to ``k``, so ``BYO\u212a``
    would become ``byok``). For a billing switch, text with a control or non-ASCII character
    in it is not a mode."""
    return text.strip(ASCII_WHITE_SPACE).translate(_ASCII_LOWERCASE)


def recognize_normalized_mode(text: str | None) -> BillingMode | None:
    """The mode ``text`` spells after :func:`normalize_mode_text` (spec §2 rung 2: the org
    default), else None."""
    if text is None:
        return None
    return _MODES_BY_VALUE.get(normalize_mode_text(text))


def deployment_default(proxy_configured: bool) -> BillingMode:
    """The fail-closed mode of a deployment: the proxy pays on SaaS, the customer on self-host."""
    return BillingMode.PLATFORM_MANAGED if proxy_configured else BillingMode.BYOK
