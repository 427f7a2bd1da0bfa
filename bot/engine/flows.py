"""Flows: loading the YAML files shop staff edit, naming every mistake at once.

Loading collects *all* problems before refusing, so one run of `bot flows check` lists everything to
fix. Each state is validated on its own, so a typo in one state does not hide the mistakes in the
others. The schema is `schema.py`; one state's rules beyond it are `rules.py`; references across states
and flows are `checks.py` and `reach.py`; the templates they may send are `templates.py`. The templates
and texts (templates/, `content.py`) are read once per load and checked in the same pass, so they go
live with the flows and a mistake in them is refused with the flows' problems.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from bot.engine.actions import ActionRegistry
from bot.engine.checks import GraphIssue, check_graph, suggest
from bot.engine.content import Content, load_content
from bot.engine.machine import FlowMachine
from bot.engine.marked_yaml import FlowProblem, MarkedSource, YamlPath
from bot.engine.reach import outside_window, unreachable
from bot.engine.rules import StateRules
from bot.engine.schema import NAME, Flow, FlowHeader, State, split_target
from bot.engine.templates import TemplateCatalog
from bot.engine.texts import TextCatalog


class FlowSet:
    """The loaded flows and their machines, built once, with the templates and texts read beside them;
    the engine swaps whole sets on reload."""

    def __init__(
        self,
        flows: Mapping[str, Flow],
        actions: ActionRegistry | None = None,
        content: Content | None = None,
    ) -> None:
        self.flows: Mapping[str, Flow] = MappingProxyType(dict(flows))
        self.actions = actions if actions is not None else ActionRegistry()
        self._content = content
        self.machines: Mapping[str, FlowMachine] = MappingProxyType(
            {name: FlowMachine(flow, self.actions) for name, flow in self.flows.items()}
        )

    @property
    def content(self) -> Content:
        """The templates and texts this set was loaded with (empty without a templates folder)."""
        return self._content if self._content is not None else Content()

    @property
    def templates(self) -> TemplateCatalog | None:
        """None when the flows were loaded without a templates folder (nothing to check against)."""
        return self._content.templates if self._content is not None else None

    @property
    def texts(self) -> TextCatalog:
        """The bot's own texts; empty when the flows were loaded without a templates folder."""
        return self.content.texts

    def has_state(self, flow: str | None, state: str | None) -> bool:
        found = self.flows.get(flow) if flow is not None else None
        return found is not None and state is not None and state in found.states


class FlowLoadError(Exception):
    def __init__(self, problems: list[FlowProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def _content(templates: Path | Content | None) -> Content | None:
    if templates is None or isinstance(templates, Content):
        return templates
    return load_content(templates)


def load_flows(
    directory: Path, actions: ActionRegistry | None = None, templates: Path | Content | None = None
) -> FlowSet:
    """Every *.yaml / *.yml in `directory`, checked against the templates: a folder (read here, with
    its texts/) or the content already read from one; raises FlowLoadError listing all problems (the
    content's among them)."""
    content = _content(templates)
    flows, problems = _load(Path(directory), actions, content.templates if content else None)
    before = list(content.problems) if content else []
    if problems or before:
        raise FlowLoadError(before + problems)
    return FlowSet(flows, actions, content)


def check_flows(
    directory: Path, actions: ActionRegistry | None = None, templates: Path | Content | None = None
) -> list[FlowProblem]:
    """All problems in `directory`'s flows (and the templates and texts beside them); [] when they
    would load."""
    content = _content(templates)
    before = list(content.problems) if content else []
    return before + _load(Path(directory), actions, content.templates if content else None)[1]


# --- loading --------------------------------------------------------------------------------------


@dataclass
class _Draft:
    """One file's flow as far as it validated; `broken` states exist but failed their schema, and
    `partial` holds what of them validates without their faulty keys (checked further, never served)."""

    source: MarkedSource
    stem: str
    header: FlowHeader | None
    states: dict[str, State]
    broken: set[str]
    partial: dict[str, State] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.header.flow if self.header else self.stem


def _load(
    directory: Path, actions: ActionRegistry | None, templates: TemplateCatalog | None
) -> tuple[dict[str, Flow], list[FlowProblem]]:
    registry = actions if actions is not None else ActionRegistry()
    if not directory.is_dir():
        return {}, [FlowProblem(str(directory), 1, 1, "this flows directory does not exist")]
    files = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    if not files:
        return {}, [FlowProblem(str(directory), 1, 1, "no flow files (*.yaml) here")]
    drafts: list[_Draft] = []
    unreadable: set[str] = set()
    problems: list[FlowProblem] = []
    for path in files:
        source = MarkedSource(str(path))
        try:
            document = source.parse(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            source.problems.append(FlowProblem(str(path), 1, 1, f"cannot read this file: {exc}"))
            document = None
        draft = _validate(source, path.stem, document)
        if draft is None:
            unreadable.add(path.stem)
            problems.extend(source.problems)
        else:
            drafts.append(draft)
    _check_set(drafts, unreadable, registry, templates)
    for draft in drafts:
        problems.extend(draft.source.problems)
    problems.sort(key=lambda p: (p.file, p.line, p.column))
    flows = {
        d.name: Flow(
            d.name,
            d.header.start,
            MappingProxyType(d.states),
            d.header.fallback,
            Path(d.source.file),
            MappingProxyType(dict(d.header.replies)),
        )
        for d in drafts
        if d.header is not None
    }
    return flows, problems


def _validate(source: MarkedSource, stem: str, document: Any) -> _Draft | None:
    """The schema, file by file and state by state, so every state's mistakes are reported."""
    if document is None:
        return None
    if not isinstance(document, dict):
        source.add((), "a flow file is 'key: value' lines: flow, start, states")
        return None
    header: FlowHeader | None = None
    try:
        header = FlowHeader.model_validate({k: v for k, v in document.items() if k != "states"})
    except ValidationError as exc:
        source.add_validation((), exc)
    draft = _Draft(source, stem, header, {}, set())
    raw_states = document.get("states")
    if not isinstance(raw_states, dict) or not raw_states:
        where = ("states",) if "states" in document else ()
        source.add(where, "a flow needs 'states:' with at least one state", key="states" in document)
        return draft
    for name, raw in raw_states.items():
        path: YamlPath = ("states", name)
        if not NAME.match(name):
            source.add(
                path, f"'{name}' is not a valid state name", "use letters, digits, _ and - only", key=True
            )
        try:
            draft.states[name] = State.model_validate(raw)
        except ValidationError as exc:
            draft.broken.add(name)
            source.add_validation(path, exc)
            if (partial := _without_faulty_keys(raw, exc)) is not None:
                draft.partial[name] = partial
    return draft


def _without_faulty_keys(raw: Any, exc: ValidationError) -> State | None:
    """The state minus the keys its errors are in, so the rest of it is still checked in this run."""
    for _ in range(3):
        if not isinstance(raw, dict):
            return None
        faulty = {error["loc"][0] for error in exc.errors() if error["loc"]}
        raw = {key: value for key, value in raw.items() if key not in faulty}
        try:
            return State.model_validate(raw)
        except ValidationError as again:
            exc = again
    return None


# --- cross-checks ---------------------------------------------------------------------------------


def _check_set(
    drafts: list[_Draft], unreadable: set[str], actions: ActionRegistry, templates: TemplateCatalog | None
) -> None:
    """What one file cannot know alone: flow names, targets into other flows, actions, goto loops,
    states nothing leads to, templates, and messages that would fall outside the 24-hour window."""
    known: dict[str, set[str]] = {}
    for draft in drafts:
        if draft.header is not None:  # else its schema problems are reported; its states still count
            if draft.name in known:
                draft.source.add(("flow",), f"another file already defines flow '{draft.name}'", "rename one")
            elif draft.name != draft.stem:
                reason = f"flow '{draft.name}' is in file '{draft.stem}'"
                draft.source.add(("flow",), reason, "the flow name must be the file name")
        known.setdefault(draft.name, set()).update(draft.states, draft.broken)
    for draft in drafts:
        start = draft.header.start if draft.header else None
        if start is not None and start not in draft.states and start not in draft.broken:
            reason = f"start state '{start}' is not among the states"
            draft.source.add(("start",), reason, suggest(start, known[draft.name]))
        for name, state in {**draft.states, **draft.partial}.items():
            for path, reason, hint, key in StateRules(state, actions, templates).found:
                draft.source.add(("states", name, *path), reason, hint, key=key)
    by_name = {draft.name: draft for draft in reversed(drafts)}
    fallbacks = {
        d.name: d.header.fallback.goto
        for d in drafts
        if d.header is not None and d.header.fallback is not None
    }
    states = {name: draft.states for name, draft in by_name.items()}
    checked = {name: {**draft.states, **draft.partial} for name, draft in by_name.items()}
    issues = list(check_graph(checked, fallbacks, known, unreadable, actions))
    for draft in drafts:
        for reply, goal in draft.header.replies.items() if draft.header is not None else ():
            other, entered = split_target(draft.name, goal)
            if other not in unreadable and entered not in known.get(other, ()):
                hint = suggest(entered, known.get(other, ())) or "write a state of this flow, or flow.state"
                issues.append(GraphIssue(draft.name, ("replies", reply), f"there is no state '{goal}'", hint))
    starts = {d.name: d.header.start for d in drafts if d.header is not None}
    entries = [
        split_target(d.name, target)
        for d in drafts
        if d.header is not None
        for target in d.header.replies.values()
    ]
    complete = (
        not unreadable
        and not issues
        and not any(d.broken or d.header is None or d.source.problems for d in drafts)
    )
    if complete:  # a broken state or target could be the missing link: judge the whole only when sound
        issues += unreachable(states, starts, fallbacks, actions, entries)
        issues += outside_window(states, starts, fallbacks, actions)
    for issue in issues:
        by_name[issue.flow].source.add(issue.path, issue.reason, issue.hint, key=issue.key)
