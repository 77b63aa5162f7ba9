"""Fixtures every test directory may use.

- The real databases (``tests/store/db_fixtures.py``): ``engine_url`` (a migrated database of
  each engine, per session and xdist worker), ``new_database``, ``make_context``, ``context``
  and ``postgres_server``.
- The app over them (``tests/api/api_fixtures.py``): ``api``.
- ``captured_logs``: the app's JSON logs, as ``llmbilling serve`` writes them, in memory.

The repository root is on ``sys.path`` through pyproject's ``pythonpath = ["."]``, so tests
import their helpers as ``tests.<directory>.<module>``; shared Hypothesis strategies live in
``tests/strategies.py`` and the clean subprocess environment in ``tests/environment.py``. A
directory keeps a conftest of its own only for fixtures no other directory uses
(``tests/core/conftest.py``: the hand-written test registries).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
import structlog
from tests.api.api_fixtures import api
from tests.store.db_fixtures import (
    context,
    engine_url,
    make_context,
    new_database,
    postgres_server,
)

from llmbilling.api.observability import configure_logging

__all__ = [
    "api",
    "captured_logs",
    "context",
    "engine_url",
    "make_context",
    "new_database",
    "postgres_server",
]


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """The app's JSON logs (structlog and stdlib, DEBUG and up) in memory; the root logger's
    handlers and level, and structlog's defaults, are put back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging(stream, level=logging.DEBUG)
    yield stream
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)
