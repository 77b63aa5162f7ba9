"""The layering rule: service/ reaches the database only through the store's repositories and
views (no SQLAlchemy, no table definitions), and api/ only through service/ (nothing of the
store at all)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import llmbilling

PACKAGE = Path(llmbilling.__file__).parent
FORBIDDEN = {
    "service": ("sqlalchemy", "llmbilling.store.tables"),
    "api": ("sqlalchemy", "llmbilling.store"),
}


def _imported_modules(tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _forbidden(layer: str, module: str) -> bool:
    return any(module == name or module.startswith(f"{name}.") for name in FORBIDDEN[layer])


def _layer(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0]


_MODULES = sorted(path for layer in FORBIDDEN for path in (PACKAGE / layer).rglob("*.py"))


@pytest.mark.parametrize("path", _MODULES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_each_layer_reaches_the_database_only_through_the_one_below(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    layer = _layer(path)
    bad = sorted(module for module in _imported_modules(tree) if _forbidden(layer, module))
    assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}; go through the layer below"


def test_the_walk_sees_the_layers() -> None:
    assert len(_MODULES) > 20
    assert {_layer(path) for path in _MODULES} == {"service", "api"}
    tree = ast.parse("from llmbilling.store import tables\nimport sqlalchemy.exc\n")
    found = _imported_modules(tree)
    assert {m for m in found if _forbidden("service", m)} == {
        "llmbilling.store.tables",
        "sqlalchemy.exc",
    }
    assert {m for m in found if _forbidden("api", m)} == {
        "llmbilling.store",
        "llmbilling.store.tables",
        "sqlalchemy.exc",
    }
