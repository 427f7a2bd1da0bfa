"""YAML read with its marks: plain data plus where each value and key was written, for error messages.

Staff are not programmers, so a problem is reported as `file:line:column: reason (hint: ...)` at the
exact YAML node; pydantic's errors are put into the flow language's words here.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from bot.engine.schema import KNOWN_KEYS


@dataclass(frozen=True)
class FlowProblem:
    file: str
    line: int
    column: int
    reason: str
    hint: str | None = None

    def __str__(self) -> str:
        hint = f" (hint: {self.hint})" if self.hint else ""
        return f"{self.file}:{self.line}:{self.column}: {self.reason}{hint}"


YamlPath = tuple[str | int, ...]


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: `on`, `yes`, `no` stay text (PyYAML would turn the `on:` key into True)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_TYPED_SCALARS = {f"tag:yaml.org,2002:{t}" for t in ("null", "bool", "int", "float")}


class MarkedSource:
    """One file's text turned into plain data, remembering where each value and key was written."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.marks: dict[YamlPath, yaml.Mark] = {}
        self.key_marks: dict[YamlPath, yaml.Mark] = {}
        self.collections: set[YamlPath] = set()
        self.written: set[YamlPath] = set()
        self.problems: list[FlowProblem] = []

    def parse(self, text: str) -> Any:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                self.problems.append(FlowProblem(self.file, 1, 1, "the file is empty"))
                return None
            return self._build(loader, node, (), set())
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            reason = " ".join(filter(None, [exc.context, exc.problem])) or "invalid YAML"
            line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            self.problems.append(FlowProblem(self.file, line, column, reason, _yaml_hint(reason)))
            return None
        finally:
            loader.dispose()

    def _build(self, loader: _Loader, node: yaml.Node, path: YamlPath, active: set[int]) -> Any:
        self.marks[path] = node.start_mark
        if isinstance(node, yaml.ScalarNode):
            if node.tag in _TYPED_SCALARS:
                return loader.yaml_constructors[node.tag](loader, node)
            return node.value
        if id(node) in active:
            self.add(path, "this alias refers to itself")
            return None
        active = active | {id(node)}
        self.collections.add(path)
        if isinstance(node, yaml.SequenceNode):
            return [self._build(loader, item, (*path, i), active) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.MappingNode)
        explicit = sum(1 for key_node, _ in node.value if key_node.tag != "tag:yaml.org,2002:merge")
        loader.flatten_mapping(node)  # `<<: *anchor` entries come first; written keys override them
        inherited = len(node.value) - explicit
        mapping: dict[str, Any] = {}
        for index, (key_node, value_node) in enumerate(node.value):
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(self._at(key_node.start_mark, "a key must be plain text"))
                continue
            child = (*path, key_node.value)
            if key_node.value in mapping and index >= inherited and child in self.written:
                self.problems.append(
                    self._at(key_node.start_mark, f"'{key_node.value}' appears twice here", "keep only one")
                )
            self.key_marks[child] = key_node.start_mark
            if index >= inherited:
                self.written.add(child)
            mapping[key_node.value] = self._build(loader, value_node, child, active)
        return mapping

    def _at(self, mark: yaml.Mark, reason: str, hint: str | None = None) -> FlowProblem:
        return FlowProblem(self.file, mark.line + 1, mark.column + 1, reason, hint)

    def add(self, path: YamlPath, reason: str, hint: str | None = None, *, key: bool = False) -> None:
        """A problem at `path`, or at the nearest enclosing node that was written.

        Points at the key (`buttons:`) when asked to or when the value is a block of lines, since a
        block's own mark is its first child's line.
        """
        while True:
            mark = self.key_marks.get(path) if key or path in self.collections else None
            mark = mark or self.marks.get(path)
            if mark is not None or not path:
                break
            path, key = path[:-1], False
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        self.problems.append(FlowProblem(self.file, line, column, reason, hint))

    def add_validation(self, prefix: YamlPath, exc: ValidationError) -> None:
        """Pydantic's errors in the words of the flow language."""
        for error in exc.errors(include_url=False):
            loc: YamlPath = (*prefix, *error["loc"])
            key = bool(loc) and loc[-1] == "[key]"
            if key:
                loc = loc[:-1]
            kind = error["type"]
            hint = (error.get("ctx") or {}).get("hint")
            if kind == "extra_forbidden":
                reason, key = f"unknown key '{loc[-1]}'", True
                close = difflib.get_close_matches(str(loc[-1]), KNOWN_KEYS, 1)
                hint = f"did you mean '{close[0]}'?" if close else "check the spelling and the indentation"
            elif kind == "missing":
                reason = f"'{loc[-1]}' is missing here"
                hint = hint or f"add a line '{loc[-1]}: ...' here (see docs/flows.md)"
            elif kind == "greater_than_equal":
                reason = f"expected a number of at least {(error.get('ctx') or {}).get('ge')} here"
            elif kind == "literal_error":
                reason = f"expected {(error.get('ctx') or {}).get('expected', 'another value')} here"
                hint = hint or "write one of these words exactly"
            else:
                reason = _FRIENDLY.get(kind) or error["msg"]
            self.add(loc, reason, hint or _HINTS.get(kind), key=key)


_FRIENDLY = {
    "string_type": "expected a text here",
    "int_type": "expected a whole number here",
    "int_parsing": "expected a whole number here",
    "list_type": "expected a list here (lines starting with '- ')",
    "dict_type": "expected 'key: value' lines here",
    "model_type": "expected 'key: value' lines here",
    "model_attributes_type": "expected 'key: value' lines here",
}


_HINTS = {
    "greater_than_equal": "use a bigger number",
    "string_type": 'put the text in quotes: "like this"',
    "int_type": "write digits only, like 2",
    "int_parsing": "write digits only, like 2",
    "float_type": "write a number, like 2 or 2.5",
    "float_parsing": "write a number, like 2 or 2.5",
    "bool_type": "write true or false",
    "bool_parsing": "write true or false",
    "list_type": "write each item on its own line starting with '- ', or [a, b]",
    "dict_type": "indent the lines under this key by two more spaces",
    "model_type": "indent the lines under this key by two more spaces",
    "model_attributes_type": "indent the lines under this key by two more spaces",
    "too_short": "add at least one",
    "too_long": "remove some",
}


def _yaml_hint(reason: str) -> str | None:
    if "'\\t'" in reason:
        return "indent with spaces, not tabs"
    if "mapping values are not allowed" in reason:
        return 'put text that contains ": " in quotes'
    if "could not find expected ':'" in reason or "expected <block end>" in reason:
        return "check the indentation of this line and the one above"
    return None
