"""The reliability tests' two speeds, and how they report what they measured.

Bounded in CI; ``LLMBILLING_LONG_RUN=1`` turns each into its long version (see each module's
docstring). ``report`` prints a measured figure, shown with ``pytest -s``.
"""

from __future__ import annotations

import os

LONG_RUN = os.environ.get("LLMBILLING_LONG_RUN") == "1"


def report(line: str) -> None:
    """A measured figure, shown with ``pytest -s``."""
    print(f"\n[reliability] {line}")
