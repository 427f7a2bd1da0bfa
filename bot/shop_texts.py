"""Settings the shop's own texts need: `{address}` and `{opening_hours}` in templates/texts/*.yaml are
filled from `shop.address` and `shop.opening_hours` in settings.yaml.

A text that uses one of them while the setting is empty would reach customers as "Come at : , at ."; so
the server refuses to start and `bot flows check` reports it, naming the setting and the text's
file:line:column, before any customer reads it.
"""

from __future__ import annotations

import string
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from bot.engine.marked_yaml import FlowProblem, MarkedSource, YamlPath
from bot.settings import ShopSettings

TEXTS_DIR = "texts"
SHOP_PLACEHOLDERS: Mapping[str, str] = {"address": "address", "opening_hours": "opening_hours"}
"""Placeholder -> the `shop:` setting that fills it."""
_EXAMPLES = {"address": '"123 Main Street, Springfield"', "opening_hours": '"Mon-Sat 9am-7pm"'}


class ShopSettingsMissing(Exception):
    """Texts use a `shop:` setting that is not set; `problems` say which, and where."""

    def __init__(self, problems: list[FlowProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


def is_set(value: str | Mapping[str, str]) -> bool:
    """One text, or one per language: set when some text is not blank."""
    if isinstance(value, str):
        return bool(value.strip())
    return any(text.strip() for text in value.values())


def missing_shop_settings(shop: ShopSettings, templates_dir: Path) -> list[FlowProblem]:
    """One problem per empty `shop:` setting that a text uses, at its first use."""
    missing = {
        placeholder: setting
        for placeholder, setting in SHOP_PLACEHOLDERS.items()
        if not is_set(getattr(shop, setting))
    }
    if not missing:
        return []
    directory = templates_dir / TEXTS_DIR
    files = sorted(directory.glob("*.y*ml")) if directory.is_dir() else []
    problems: list[FlowProblem] = []
    for path in files:
        for placeholder, setting in list(missing.items()):
            where = _first_use(path, placeholder)
            if where is not None:
                problems.append(
                    FlowProblem(
                        str(path),
                        *where,
                        f"this text uses {{{placeholder}}}, but shop.{setting} is not set in settings.yaml",
                        f"add `{setting}: {_EXAMPLES[placeholder]}` under shop: "
                        "(one text, or one per language)",
                    )
                )
                del missing[placeholder]
    return problems


def require_shop_settings(shop: ShopSettings, templates_dir: Path) -> None:
    """At start-up: raise ShopSettingsMissing rather than send customers a text with holes in it."""
    problems = missing_shop_settings(shop, templates_dir)
    if problems:
        raise ShopSettingsMissing(problems)


def _first_use(path: Path, placeholder: str) -> tuple[int, int] | None:
    """(line, column) of the first text in `path` that uses {placeholder}; unreadable files are the
    texts loaders' to report."""
    source = MarkedSource(str(path))
    try:
        document = source.parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None
    for location, text in _texts(document, ()):
        if placeholder in _placeholders(text):
            mark = source.marks.get(location)
            return (mark.line + 1, mark.column + 1) if mark else (1, 1)
    return None


def _texts(node: Any, path: YamlPath) -> Iterator[tuple[YamlPath, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _texts(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _texts(value, (*path, index))


def _placeholders(text: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name}
    except ValueError:  # a stray brace: the texts loader reports it
        return set()
