"""The layering rule: service/ and api/ reach the database only through the store's
repositories and views, so neither imports SQLAlchemy nor the table definitions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import llmbilling

PACKAGE = Path(llmbilling.__file__).parent
FORBIDDEN = ("sqlalchemy", "llmbilling.store.tables")


def _imported_modules(tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _forbidden(module: str) -> bool:
    return any(module == name or module.startswith(f"{name}.") for name in FORBIDDEN)


_MODULES = sorted(path for layer in ("service", "api") for path in (PACKAGE / layer).rglob("*.py"))


@pytest.mark.parametrize("path", _MODULES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_service_and_api_import_no_sqlalchemy_and_no_tables(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad = sorted(module for module in _imported_modules(tree) if _forbidden(module))
    assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}; go through a store repository"


def test_the_walk_sees_the_layers() -> None:
    assert len(_MODULES) > 20
    tree = ast.parse("from llmbilling.store import tables\nimport sqlalchemy.exc\n")
    assert {m for m in _imported_modules(tree) if _forbidden(m)} == {
        "llmbilling.store.tables",
        "sqlalchemy.exc",
    }
