"""Whether the database answers: the readiness probe's one statement."""

from __future__ import annotations

from sqlalchemy import text

from llmbilling.store.engine import Store


def check_database(store: Store) -> None:
    """Run ``SELECT 1`` on a read connection; returns when the database answered.

    Raises :class:`StoreUnavailableError` (sanitized message) when it did not.
    """
    with store.connection() as connection:
        connection.execute(text("SELECT 1"))
