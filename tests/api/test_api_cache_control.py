"""``Cache-Control: no-cache`` on the decision GET: decide from the store, not from memory.

The replica tests (``tests/reliability/test_replicas.py``) show the effect across processes;
this table pins which header values ask for it (RFC 9111 §5.2.1.4: a directive among others,
names case-insensitive)."""

from __future__ import annotations

import pytest

from llmbilling.api.routes.workspace_billing import asks_no_cache


@pytest.mark.parametrize(
    ("header", "asks"),
    [
        (None, False),
        ("", False),
        ("no-cache", True),
        ("No-Cache", True),
        ("max-age=0, no-cache", True),
        ('no-cache="ETag"', True),
        ("no-store", False),
        ("max-age=0", False),
        ("no-cacheable", False),
    ],
)
def test_only_the_no_cache_directive_asks_for_a_store_read(header: str | None, asks: bool) -> None:
    assert asks_no_cache(header) is asks
