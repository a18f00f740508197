"""The repository's own layout rules that import-linter (product packages only) cannot see."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("gateway", "stream", "sinks", "paynotify")
MAX_PRODUCT_LINES = 400


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_tests_never_import_the_benchmarks() -> None:
    """bench imports tests.support (shared helpers live there); the other way is a cycle."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").rglob("*.py")
        if any(name == "bench" or name.startswith("bench.") for name in _imported(path))
    ]
    assert offenders == []


def test_no_product_module_is_longer_than_the_limit() -> None:
    long = {
        str(path.relative_to(ROOT)): count
        for package in PRODUCT
        for path in (ROOT / package).rglob("*.py")
        if (count := len(path.read_text().splitlines())) > MAX_PRODUCT_LINES
    }
    assert long == {}
