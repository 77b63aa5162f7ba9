"""Store tests run against real SQLite and real PostgreSQL (see db_fixtures)."""

from __future__ import annotations

import sys
from pathlib import Path

# The repository root, so both conftests and the tests share one fixtures module.
if str(Path(__file__).resolve().parents[2]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.store.db_fixtures import (
    context,
    engine_url,
    make_context,
    new_database,
    postgres_server,
)

__all__ = ["context", "engine_url", "make_context", "new_database", "postgres_server"]
