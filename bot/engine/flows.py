"""Flows: the YAML files shop staff edit, their schema, and loading that names every mistake at once.

Staff are not programmers, so a problem is reported as `file:line:column: reason (hint: ...)` for the
exact YAML node, and loading collects *all* problems before refusing, so one run of
`bot flows check` lists everything to fix. Each state is validated on its own, so a typo in one state
does not hide the mistakes in the others. The schema is the pydantic models below; what they cannot
see field by field is checked by `_Rules`, and references across states and flows by
`machine.check_graph`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, ValidationError
from pydantic_core import PydanticCustomError

from bot.engine.actions import ActionRegistry
from bot.engine.machine import ON_KEYS, FlowMachine, check_graph, normalize, suggest
from bot.whatsapp import outbound as wa

NAME = re.compile(r"^[A-Za-z0-9_-]+$")
LANGUAGE = re.compile(r"^[a-z]{2,3}(?:[_-][A-Za-z0-9]{2,4})?$")
# {variable} or {variable|fallback}; see engine.render for how a missing value is filled.
PLACEHOLDER = re.compile(r"\{([A-Za-z_][\w.]*)(?:\|([^{}]*))?\}")
CUSTOMER_FIELDS = ("name", "phone", "wa_id", "language")


def _fail(reason: str, hint: str | None = None) -> PydanticCustomError:
    context: dict[str, str] = {"reason": reason}
    if hint:
        context["hint"] = hint
    return PydanticCustomError("flow", "{reason}", context)


def _check_placeholders(text: str) -> None:
    for found in PLACEHOLDER.finditer(text):
        scope, _, field = found.group(1).partition(".")
        if scope == "customer" and field not in CUSTOMER_FIELDS:
            raise _fail(
                f"unknown customer field '{found.group(1)}'",
                "use {customer.name}, {customer.phone}, {customer.wa_id} or {customer.language}",
            )


def _localized(value: Any) -> str | dict[str, str]:
    """A text, or one text per language; numbers are read as text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str):
        if not value.strip():
            raise _fail("this text is empty")
        _check_placeholders(value)
        return value
    if isinstance(value, dict) and value:
        texts: dict[str, str] = {}
        for language, text in value.items():
            if not LANGUAGE.match(language):
                raise _fail(f"'{language}' is not a language code", "use codes like en, es, zh")
            if isinstance(text, int | float) and not isinstance(text, bool):
                text = str(text)
            if not isinstance(text, str) or not text.strip():
                raise _fail(f"the '{language}' text must be a non-empty text")
            _check_placeholders(text)
            texts[language] = text
        return texts
    raise _fail("expected a text, or one text per language", 'write "Hello" or {en: "Hello", es: "Hola"}')


LocalizedText = Annotated[str | dict[str, str], PlainValidator(_localized)]


def variants(text: str | dict[str, str] | None) -> Iterator[tuple[str | None, str]]:
    """(language or None, text) for each version of a text."""
    if isinstance(text, str):
        yield None, text
    elif text:
        yield from text.items()


def _max_chars(limit: int, what: str, hint: str) -> AfterValidator:
    def check(text: str | dict[str, str]) -> str | dict[str, str]:
        for language, variant in variants(text):
            if len(variant) > limit:
                where = f" ({language})" if language else ""
                raise _fail(
                    f"{what} '{variant}'{where} is {len(variant)} characters; WhatsApp allows {limit}", hint
                )
        return text

    return AfterValidator(check)


def _target(value: str) -> str:
    flow_name, dot, state = value.partition(".")
    if not NAME.match(flow_name) or (dot and not NAME.match(state)):
        raise _fail(
            f"'{value}' is not a state", "write a state of this flow (menu) or flow.state (orders.ask)"
        )
    return value


def _name(value: str) -> str:
    if not NAME.match(value):
        raise _fail(f"'{value}' is not a valid name", "use letters, digits, _ and - only")
    return value


Target = Annotated[str, AfterValidator(_target)]
Name = Annotated[str, AfterValidator(_name)]
ButtonTitle = Annotated[
    LocalizedText,
    _max_chars(
        wa.BUTTON_TITLE_MAX, "button title", "a reply-button title is at most 20 characters; shorten it"
    ),
]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class ButtonSpec(_Spec):
    id: str = Field(min_length=1, max_length=wa.BUTTON_ID_MAX)
    title: ButtonTitle


class ListRowSpec(_Spec):
    id: str = Field(min_length=1, max_length=wa.LIST_ROW_ID_MAX)
    title: Annotated[
        LocalizedText,
        _max_chars(wa.LIST_ROW_TITLE_MAX, "list row title", "a list row title is at most 24 characters"),
    ]
    description: (
        Annotated[LocalizedText, _max_chars(wa.LIST_ROW_DESCRIPTION_MAX, "description", "shorten it")] | None
    ) = None


class ListSectionSpec(_Spec):
    title: (
        Annotated[LocalizedText, _max_chars(wa.LIST_SECTION_TITLE_MAX, "section title", "shorten it")] | None
    ) = None
    rows: list[ListRowSpec] = Field(min_length=1)


def _total_rows(sections: list[ListSectionSpec]) -> list[ListSectionSpec]:
    rows = sum(len(section.rows) for section in sections)
    if rows > wa.LIST_MAX_ROWS:
        raise _fail(
            f"this list has {rows} rows; WhatsApp allows {wa.LIST_MAX_ROWS} in all",
            "drop rows, or move some into a second state",
        )
    if len(sections) > 1 and any(section.title is None for section in sections):
        raise _fail("every section needs a title when a list has more than one")
    return sections


class ListSpec(_Spec):
    button: Annotated[
        LocalizedText,
        _max_chars(wa.LIST_BUTTON_MAX, "list button label", "a list button label is at most 20"),
    ]
    sections: Annotated[list[ListSectionSpec], AfterValidator(_total_rows)] = Field(
        min_length=1, max_length=wa.LIST_MAX_SECTIONS
    )


def _link(value: str) -> str:
    if not re.match(r"^https://\S+$", value):
        raise _fail("a media link must start with https://", "WhatsApp fetches the file from this address")
    return value


def _template_name(value: str) -> str:
    if not re.match(r"^[a-z0-9_]{1,512}$", value):
        raise _fail(f"'{value}' is not a template name", "use the approved name: lower case, digits and _")
    return value


class MediaSpec(_Spec):
    type: Literal["image", "document", "audio", "video"]
    link: Annotated[str, AfterValidator(_link)]
    caption: LocalizedText | None = None
    filename: str | None = None


class TemplateSpec(_Spec):
    name: Annotated[str, AfterValidator(_template_name)]
    language: str | None = None
    """The approved template's language code; without it, the customer's language."""
    params: list[str] = []
    payloads: list[str] = []


def _keywords(words: list[str]) -> list[str]:
    for word in words:
        if not normalize(word):
            raise _fail("a keyword is empty")
    return words


class OnSpec(_Spec):
    """Transitions. Keys that are not listed here are reply ids (button, list row or template payload)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, Target] = Field(init=False)

    keywords: dict[Target, Annotated[list[str], AfterValidator(_keywords)]] = {}
    pattern: dict[str, Target] = {}
    text: Target | None = None
    image: Target | None = None
    document: Target | None = None
    audio: Target | None = None
    video: Target | None = None
    sticker: Target | None = None
    location: Target | None = None
    contacts: Target | None = None
    reaction: Target | None = None
    media: Target | None = None
    other: Target | None = None


class FallbackSpec(_Spec):
    say: LocalizedText | None = None
    after: int | None = Field(default=None, ge=1)
    """Go to `goto` on this many misses in a row (1 when omitted and `goto` is given)."""
    goto: Target | None = None


class State(_Spec):
    say: LocalizedText | None = None
    buttons: list[ButtonSpec] | None = Field(default=None, min_length=1)
    choices: ListSpec | None = Field(default=None, alias="list")
    media: MediaSpec | None = None
    template: TemplateSpec | None = None
    on: OnSpec | None = None
    fallback: FallbackSpec | None = None
    goto: Target | None = None
    call: str | None = None
    args: dict[str, Any] = {}


class FlowHeader(_Spec):
    flow: Name
    start: Name
    fallback: FallbackSpec | None = None


_MODELS: tuple[type[_Spec], ...] = (State, FlowHeader, ButtonSpec, ListSpec, ListSectionSpec, ListRowSpec)
_MODELS += (MediaSpec, TemplateSpec, OnSpec, FallbackSpec)
KNOWN_KEYS = sorted({f.alias or n for m in _MODELS for n, f in m.model_fields.items()} | {"states"})


@dataclass(frozen=True)
class Flow:
    name: str
    start: str
    states: Mapping[str, State]
    fallback: FallbackSpec | None
    file: Path


class FlowSet:
    """The loaded flows and their machines, built once; the engine swaps whole sets on reload."""

    def __init__(self, flows: Mapping[str, Flow], actions: ActionRegistry | None = None) -> None:
        self.flows: Mapping[str, Flow] = MappingProxyType(dict(flows))
        self.actions = actions if actions is not None else ActionRegistry()
        self.machines: Mapping[str, FlowMachine] = MappingProxyType(
            {name: FlowMachine(flow, self.actions) for name, flow in self.flows.items()}
        )

    def has_state(self, flow: str | None, state: str | None) -> bool:
        found = self.flows.get(flow) if flow is not None else None
        return found is not None and state is not None and state in found.states


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


class FlowLoadError(Exception):
    def __init__(self, problems: list[FlowProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def load_flows(directory: Path, actions: ActionRegistry | None = None) -> FlowSet:
    """Every *.yaml / *.yml in `directory`; raises FlowLoadError listing all problems."""
    flows, problems = _load(Path(directory), actions)
    if problems:
        raise FlowLoadError(problems)
    return FlowSet(flows, actions)


def check_flows(directory: Path, actions: ActionRegistry | None = None) -> list[FlowProblem]:
    """All problems in `directory`'s flows; [] when they would load."""
    return _load(Path(directory), actions)[1]


# --- YAML with marks -------------------------------------------------------------------------------

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


class _Source:
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
            elif kind == "greater_than_equal":
                reason = f"expected a number of at least {(error.get('ctx') or {}).get('ge')} here"
            elif kind == "literal_error":
                reason = f"expected {(error.get('ctx') or {}).get('expected', 'another value')} here"
            else:
                reason = _FRIENDLY.get(kind) or error["msg"]
            self.add(loc, reason, hint, key=key)


_FRIENDLY = {
    "string_type": "expected a text here",
    "int_type": "expected a whole number here",
    "int_parsing": "expected a whole number here",
    "list_type": "expected a list here (lines starting with '- ')",
    "dict_type": "expected 'key: value' lines here",
    "model_type": "expected 'key: value' lines here",
    "model_attributes_type": "expected 'key: value' lines here",
}


def _yaml_hint(reason: str) -> str | None:
    if "'\\t'" in reason:
        return "indent with spaces, not tabs"
    if "mapping values are not allowed" in reason:
        return 'put text that contains ": " in quotes'
    if "could not find expected ':'" in reason or "expected <block end>" in reason:
        return "check the indentation of this line and the one above"
    return None


# --- loading --------------------------------------------------------------------------------------


@dataclass
class _Draft:
    """One file's flow as far as it validated; `broken` states exist but failed their schema."""

    source: _Source
    stem: str
    header: FlowHeader | None
    states: dict[str, State]
    broken: set[str]

    @property
    def name(self) -> str:
        return self.header.flow if self.header else self.stem


def _load(directory: Path, actions: ActionRegistry | None) -> tuple[dict[str, Flow], list[FlowProblem]]:
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
        source = _Source(str(path))
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
    _check_set(drafts, unreadable, registry)
    for draft in drafts:
        problems.extend(draft.source.problems)
    problems.sort(key=lambda p: (p.file, p.line, p.column))
    flows = {
        d.name: Flow(
            d.name, d.header.start, MappingProxyType(d.states), d.header.fallback, Path(d.source.file)
        )
        for d in drafts
        if d.header is not None
    }
    return flows, problems


def _validate(source: _Source, stem: str, document: Any) -> _Draft | None:
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
    return draft


# --- cross-checks ---------------------------------------------------------------------------------


def _check_set(drafts: list[_Draft], unreadable: set[str], actions: ActionRegistry) -> None:
    """What one file cannot know alone: flow names, targets into other flows, actions, goto loops."""
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
        for name, state in draft.states.items():
            for path, reason, hint, key in _Rules(state, actions).found:
                draft.source.add(("states", name, *path), reason, hint, key=key)
    by_name = {draft.name: draft for draft in reversed(drafts)}
    fallbacks = {
        d.name: d.header.fallback.goto
        for d in drafts
        if d.header is not None and d.header.fallback is not None
    }
    states = {name: draft.states for name, draft in by_name.items()}
    for issue in check_graph(states, fallbacks, known, unreadable, actions):
        by_name[issue.flow].source.add(issue.path, issue.reason, issue.hint, key=issue.key)


class _Rules:
    """One state's rules that pydantic cannot see field by field; problems collect in `found`."""

    def __init__(self, state: State, actions: ActionRegistry) -> None:
        self.state = state
        self.found: list[tuple[YamlPath, str, str | None, bool]] = []
        self.message(state)
        self.choices(state)
        self.transitions(state)
        self.action(state, actions)

    def add(self, path: YamlPath, reason: str, hint: str | None = None, key: bool = False) -> None:
        self.found.append((path, reason, hint, key))

    def message(self, state: State) -> None:
        limit = wa.TEXT_MAX
        if state.buttons and state.choices:
            self.add(("list",), "a message has either buttons or a list, not both", "split the state", True)
        for what, present, most in (
            ("buttons", state.buttons, wa.BUTTON_BODY_MAX),
            ("list", state.choices, wa.LIST_BODY_MAX),
        ):
            if present:
                limit = min(limit, most)
                if state.say is None:
                    self.add((what,), f"{what} need a 'say' text: it is the message body", None, True)
        for language, text in variants(state.say):
            if len(text) > limit:
                reason = f"this text is {len(text)} characters; here WhatsApp allows {limit}"
                self.add(("say", language) if language else ("say",), reason, "shorten it")
        media = state.media
        if media is not None and media.caption is not None and media.type == "audio":
            self.add(("media", "caption"), "audio takes no caption", None, True)
        if media is not None and media.filename is not None and media.type != "document":
            self.add(("media", "filename"), "only a document takes a filename", None, True)

    def choices(self, state: State) -> None:
        """Buttons and list rows: count, unique ids and titles, each answered in `on:`."""
        buttons = state.buttons or []
        if len(buttons) > wa.MAX_BUTTONS:
            reason = f"{len(buttons)} buttons; WhatsApp allows {wa.MAX_BUTTONS}"
            self.add(("buttons",), reason, "use a list for more choices (up to 10)", True)
        titles: set[tuple[str | None, str]] = set()
        for i, button in enumerate(buttons):
            for variant in variants(button.title):
                if variant in titles:
                    self.add(
                        ("buttons", i, "title"), f"two buttons are titled '{variant[1]}'", "make them differ"
                    )
                titles.add(variant)
        offered: list[tuple[YamlPath, str]] = [(("buttons", i, "id"), b.id) for i, b in enumerate(buttons)]
        for n, section in enumerate(state.choices.sections if state.choices else ()):
            offered += [
                (("list", "sections", n, "rows", r, "id"), row.id) for r, row in enumerate(section.rows)
            ]
        replies = (state.on.model_extra or {}) if state.on else {}
        seen: set[str] = set()
        for path, reply_id in offered:
            if reply_id in seen:
                self.add(path, f"id '{reply_id}' is used twice in this state", "give each choice its own id")
            seen.add(reply_id)
            if reply_id in ON_KEYS:
                self.add(path, f"'{reply_id}' is a reserved word in 'on:' and cannot be an id", "rename it")
            elif reply_id not in replies:
                hint = f"add '{reply_id}: <state>' under 'on:'"
                if state.goto is not None:
                    hint = "this state moves on at once (goto); put the choices in the state it goes to"
                self.add(path, f"'{reply_id}' has no transition", hint)
        for reply_id in replies:
            close = difflib.get_close_matches(reply_id, ON_KEYS, 1, 0.75)
            if reply_id not in seen and close:
                self.add(("on", reply_id), f"unknown key '{reply_id}'", f"did you mean '{close[0]}'?", True)

    def transitions(self, state: State) -> None:
        on = state.on
        for regex in on.pattern if on else ():
            try:
                re.compile(regex)
            except re.error as exc:
                hint = "patterns are regular expressions; a literal ( [ { . ? * + \\ needs a \\ before it"
                self.add(
                    ("on", "pattern", regex), f"invalid pattern: {exc.msg} at position {exc.pos}", hint, True
                )
        owner: dict[str, str] = {}
        for target, words in on.keywords.items() if on else ():
            for i, word in enumerate(words):
                other = owner.setdefault(normalize(word), target)
                if other != target:
                    self.add(
                        ("on", "keywords", target, i), f"keyword '{word}' also leads to '{other}'", "keep one"
                    )
        if state.goto is not None:
            for key, used in (("on", on is not None), ("fallback", state.fallback is not None)):
                if used:
                    reason = f"'{key}' is never used: this state moves on at once (goto)"
                    self.add((key,), reason, "remove goto or this", True)
        if state.fallback is not None and state.fallback.after is not None and state.fallback.goto is None:
            self.add(
                ("fallback", "after"),
                "'after' needs a 'goto': where to go after that many misses",
                None,
                True,
            )

    def action(self, state: State, actions: ActionRegistry) -> None:
        if state.args and not state.call:
            self.add(("args",), "'args' without 'call'", "add the action to call, or remove args", True)
        if not state.call:
            return
        if state.call not in actions:
            known = f"known actions: {', '.join(actions)}" if len(actions) else "no actions are available yet"
            self.add(("call",), f"unknown action '{state.call}'", suggest(state.call, actions) or known)
        for issue in actions.check_args(state.call, state.args):
            self.add(("args", *issue.loc), issue.reason, issue.hint)
