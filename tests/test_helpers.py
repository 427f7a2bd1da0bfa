"""The tests' own helpers are written once (tests/helpers.py, fixtures in tests/conftest.py): a helper
copied into a second test module drifts from the first, and a fix reaches only one of them."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from tests.helpers import REPO


def _definitions(path: Path) -> list[tuple[str, str]]:
    """(name, shape) of each module-level function and class that is not a test: its code as the
    parser sees it, whatever its docstring and layout."""
    found = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        if node.name.startswith("test_"):
            continue
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # the docstring
        if _trivial(body):
            continue
        found.append((node.name, ast.dump(ast.Module(body=body, type_ignores=[]))))
    return found


def _trivial(body: list[ast.stmt]) -> bool:
    """`return []` and the like: alike by nature, nothing to share."""
    if len(body) != 1 or not isinstance(body[0], ast.Return):
        return False
    value = body[0].value
    return value is None or (
        isinstance(value, ast.Constant | ast.List | ast.Dict | ast.Tuple)
        and not any(isinstance(child, ast.Call) for child in ast.walk(value))
    )


def test_no_helper_is_written_twice() -> None:
    places: dict[str, list[str]] = defaultdict(list)
    for path in sorted((REPO / "tests").rglob("*.py")):
        relative = path.relative_to(REPO)
        if "fixtures" in relative.parts:  # the old databases' generator: a program of its own
            continue
        for name, shape in _definitions(path):
            places[shape].append(f"{relative}:{name}")
    copies = sorted(", ".join(where) for where in places.values() if len(where) > 1)
    assert copies == [], "the same helper in several places: move it to tests/helpers.py"
