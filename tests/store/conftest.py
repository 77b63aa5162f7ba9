"""Store tests run against real SQLite and real PostgreSQL (see db_fixtures)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from db_fixtures import (  # noqa: E402
    context,
    engine_url,
    make_context,
    new_database,
    postgres_server,
)

__all__ = ["context", "engine_url", "make_context", "new_database", "postgres_server"]
