"""Reliability tests: the real stores (SQLite file, PostgreSQL) and the real app, under faults,
load and hostile input. ``LLMBILLING_LONG_RUN=1`` turns the bounded CI versions into the long
ones (see each module's docstring)."""

from __future__ import annotations

import sys
from pathlib import Path

# The repository root, so the conftests and the tests share one fixtures module.
if str(Path(__file__).resolve().parents[2]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.api.api_fixtures import api
from tests.store.db_fixtures import (
    context,
    engine_url,
    make_context,
    new_database,
    postgres_server,
)

__all__ = ["api", "context", "engine_url", "make_context", "new_database", "postgres_server"]
