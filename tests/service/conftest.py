"""Service tests use the store tests' real databases (SQLite file and PostgreSQL)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))

from db_fixtures import (  # noqa: E402
    context,
    engine_url,
    make_context,
    new_database,
    postgres_server,
)

__all__ = ["context", "engine_url", "make_context", "new_database", "postgres_server"]
