"""Runs the real ``llmbilling`` console script against a private store, for CLI tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.environment import clean_environ

from llmbilling.store import migrate
from llmbilling.store.crypto import KeyRing
from llmbilling.store.engine import open_store

SCRIPT = Path(sys.executable).parent / "llmbilling"
SENTINEL = "sk-SENTINEL-cli-value"


class Cli:
    """Runs ``llmbilling`` with a private database, key ring and (optionally) proxy.

    The database starts migrated, as after ``db upgrade`` (only that command and
    ``serve --demo`` create one); ``with_store=False`` leaves it missing."""

    def __init__(self, folder: Path, *, with_store: bool = True) -> None:
        self.folder = folder
        self.key_ring = KeyRing.new_key_text(1)
        self.proxy: dict[str, str] = {}
        self.database_url = f"sqlite:///{folder / 'store.sqlite3'}"
        if not with_store:
            return
        store = open_store(self.database_url)
        try:
            migrate.upgrade(store)
        finally:
            store.close()

    def env(self) -> dict[str, str]:
        return {
            **clean_environ(),
            "LLMBILLING_DATABASE_URL": self.database_url,
            "LLMBILLING_SECRET_KEYS": self.key_ring,
            "COLUMNS": "200",
            **self.proxy,
        }

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env(),
            cwd=self.folder,  # no stray .env from the repository
            check=False,
            timeout=60,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))
