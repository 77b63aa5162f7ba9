"""Option parsing shared by commands: flag values checked against closed vocabularies."""

from __future__ import annotations

from llmbilling.core.modes import MODE_VALUES, BillingMode, recognize_mode
from llmbilling.errors import InvalidInputError


def parse_mode_option(field: str, text: str | None) -> BillingMode | None:
    """A mode given on the command line; anything but an exact mode is an error."""
    if text is None:
        return None
    mode = recognize_mode(text)
    if mode is None:
        raise InvalidInputError(field, f"{text!r} is not a billing mode", allowed=MODE_VALUES)
    return mode
