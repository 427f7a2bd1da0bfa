"""The flow language's schema: the pydantic models of one YAML flow file, field by field.

What a single field cannot show (buttons answered in `on:`, text lengths that depend on the message
kind, actions and their args) is checked by `rules.py`; references across states and flows by
`checks.py` and `reach.py`; the loading that ties these together and names every mistake is `flows.py`.
A loaded flow is a `Flow` (below): its header and its validated states.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator
from pydantic_core import PydanticCustomError

from bot.engine.words import REPLY_PLACEHOLDER, normalize
from bot.whatsapp import outbound as wa

NAME = re.compile(r"^[A-Za-z0-9_-]+$")
LANGUAGE = re.compile(r"^[a-z]{2,3}(?:[_-][A-Za-z0-9]{2,4})?$")
# {variable} or {variable|fallback}; see engine.render for how a missing value is filled.
PLACEHOLDER = re.compile(r"\{([A-Za-z_][\w.]*)(?:\|([^{}]*))?\}")
CUSTOMER_FIELDS = ("name", "phone", "wa_id", "language")


def flow_error(reason: str, hint: str | None = None) -> PydanticCustomError:
    context: dict[str, str] = {"reason": reason}
    if hint:
        context["hint"] = hint
    return PydanticCustomError("flow", "{reason}", context)


def _check_placeholders(text: str) -> None:
    for found in PLACEHOLDER.finditer(text):
        scope, _, attribute = found.group(1).partition(".")
        if scope == "customer" and attribute not in CUSTOMER_FIELDS:
            raise flow_error(
                f"unknown customer field '{found.group(1)}'",
                "use {customer.name}, {customer.phone}, {customer.wa_id} or {customer.language}",
            )


def _localized(value: Any) -> str | dict[str, str]:
    """A text, or one text per language; numbers are read as text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str):
        if not value.strip():
            raise flow_error("this text is empty", "write the text, or remove the line")
        _check_placeholders(value)
        return value
    if isinstance(value, dict) and value:
        texts: dict[str, str] = {}
        for language, text in value.items():
            if not LANGUAGE.match(language):
                raise flow_error(f"'{language}' is not a language code", "use codes like en, es, zh")
            if isinstance(text, int | float) and not isinstance(text, bool):
                text = str(text)
            if not isinstance(text, str) or not text.strip():
                raise flow_error(f"the '{language}' text must be a non-empty text")
            _check_placeholders(text)
            texts[language] = text
        return texts
    raise flow_error(
        "expected a text, or one text per language", 'write "Hello" or {en: "Hello", es: "Hola"}'
    )


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
                raise flow_error(
                    f"{what} '{variant}'{where} is {len(variant)} characters; WhatsApp allows {limit}", hint
                )
        return text

    return AfterValidator(check)


def _target(value: str) -> str:
    flow_name, dot, state = value.partition(".")
    if not NAME.match(flow_name) or (dot and not NAME.match(state)):
        raise flow_error(
            f"'{value}' is not a state", "write a state of this flow (menu) or flow.state (orders.ask)"
        )
    return value


def split_target(flow_name: str, target: str) -> tuple[str, str]:
    """'menu' -> (this flow, 'menu'); 'orders.ask_number' -> ('orders', 'ask_number')."""
    other, dot, state = target.partition(".")
    return (other, state) if dot else (flow_name, target)


def _name(value: str) -> str:
    if not NAME.match(value):
        raise flow_error(f"'{value}' is not a valid name", "use letters, digits, _ and - only")
    return value


_DURATION_PART = re.compile(
    r"(\d+(?:\.\d+)?)\s*(d|days?|h|hours?|hrs?|m|mins?|minutes?|s|secs?|seconds?)", re.IGNORECASE
)
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(value: Any) -> timedelta:
    """'30m', '2h', '1h30m', '25 hours', '1d'; a bare number is minutes."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = f"{value}m"
    text = str(value).strip()
    parts = list(_DURATION_PART.finditer(text))
    if not parts or _DURATION_PART.sub("", text).strip(" ,") != "":
        raise flow_error(f"'{text}' is not a duration", "write it like 30m, 2h, 1h30m or 1d")
    seconds = sum(float(p.group(1)) * _UNIT_SECONDS[p.group(2)[0].lower()] for p in parts)
    if seconds <= 0:
        raise flow_error("a duration must be more than zero", "write it like 30m, 2h or 1d")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The way staff write it: 30m, 2h, 1h30m, 1d."""
    seconds = int(value.total_seconds())
    if seconds and seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    return "".join(f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (seconds, "s")) if v) or "0s"


def _variable(value: str) -> str:
    if not re.match(r"^[A-Za-z][A-Za-z0-9_]*$", value):
        raise flow_error(
            f"'{value}' is not a variable name", "start with a letter; use letters, digits and _"
        )
    return value


Target = Annotated[str, AfterValidator(_target)]
Name = Annotated[str, AfterValidator(_name)]
Duration = Annotated[timedelta, PlainValidator(parse_duration)]
Variable = Annotated[str, AfterValidator(_variable)]
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
        raise flow_error(
            f"this list has {rows} rows; WhatsApp allows {wa.LIST_MAX_ROWS} in all",
            "drop rows, or move some into a second state",
        )
    if len(sections) > 1 and any(section.title is None for section in sections):
        raise flow_error(
            "every section needs a title when a list has more than one", "add title: to each section"
        )
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
        raise flow_error(
            "a media link must start with https://", "WhatsApp fetches the file from this address"
        )
    return value


def _template_name(value: str) -> str:
    if not re.match(r"^[a-z0-9_]{1,512}$", value):
        raise flow_error(
            f"'{value}' is not a template name", "use the approved name: lower case, digits and _"
        )
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
            raise flow_error("a keyword is empty", "remove the empty one from the list")
    return words


class TimeoutSpec(_Spec):
    """`timeout: {after: 30m, goto: menu}`: move on when the customer has been silent that long."""

    after: Duration
    goto: Target
    silent: bool = False
    """Move without a word: the customer's next message is read in the new state."""


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
    timeout: TimeoutSpec | None = None


def _pattern(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise flow_error(
            f"invalid pattern: {exc.msg} at position {exc.pos}",
            "patterns are regular expressions; a literal ( [ { . ? * + \\ needs a \\ before it",
        ) from None
    return value


def _choices(value: Any) -> dict[str, list[str]]:
    """A list of choices, or choice -> the words that also mean it; always choice -> words."""
    if isinstance(value, list):
        value = {str(choice): [] for choice in value}
    if not isinstance(value, dict) or not value:
        raise flow_error(
            "expected a list of choices, or 'choice: [words]' lines", "write [iphone, samsung, other]"
        )
    choices: dict[str, list[str]] = {}
    for choice, words in value.items():
        words = [] if words is None else words if isinstance(words, list) else [words]
        if not str(choice).strip() or not all(normalize(str(word)) for word in words):
            raise flow_error("a choice or one of its words is empty", "remove the empty one")
        choices[str(choice)] = [str(word) for word in words]
    return choices


class AskSpec(_Spec):
    """Capture the customer's next answer into a variable, re-asking until it fits."""

    save_as: Variable
    expect: Literal["text", "number", "date", "time"] = "text"
    pattern: Annotated[str, AfterValidator(_pattern)] | None = None
    choices: Annotated[dict[str, list[str]], PlainValidator(_choices)] | None = None
    min: float | None = None
    max: float | None = None
    retry: LocalizedText | None = None
    """Said when the answer does not fit (the engine has a helpful default per `expect`)."""
    then: Target


Scalar = str | int | float | bool


class ConditionSpec(_Spec):
    """One variable's test; a plain value means `equals`, a list means `one_of`."""

    equals: Scalar | None = None
    one_of: list[Scalar] | None = None
    set: bool | None = None
    above: float | None = None
    below: float | None = None
    matches: Annotated[str, AfterValidator(_pattern)] | None = None


def _condition(value: Any) -> ConditionSpec:
    if isinstance(value, ConditionSpec):
        return value
    if isinstance(value, dict):
        return ConditionSpec.model_validate(value)
    if isinstance(value, list):
        return ConditionSpec(one_of=value)
    if value is None:
        return ConditionSpec(set=False)
    if isinstance(value, str | int | float | bool):
        return ConditionSpec(equals=value)
    raise flow_error(
        "expected a value, a list of values, or tests like {above: 2}", "see Deciding in docs/flows.md"
    )


Condition = Annotated[ConditionSpec, PlainValidator(_condition)]


class BranchSpec(_Spec):
    """`- if: {device: iphone}` then `goto`; a branch without `if` is the otherwise (written last)."""

    when: dict[Variable, Condition] | None = Field(default=None, alias="if")
    goto: Target


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
    ask: AskSpec | None = None
    choose: list[BranchSpec] | None = Field(default=None, min_length=1)
    call: str | None = None
    args: dict[str, Any] = {}


def _reply_key(value: str) -> str:
    literal = REPLY_PLACEHOLDER.sub("", value)
    if not literal.strip() or "{" in literal or "}" in literal or any(ch.isspace() for ch in value):
        raise flow_error(
            f"'{value}' is not a reply id pattern",
            "write the id with {names} for its variable parts, like appt:confirm:{appointment}",
        )
    return value


class FlowHeader(_Spec):
    flow: Name
    start: Name
    fallback: FallbackSpec | None = None
    replies: dict[Annotated[str, AfterValidator(_reply_key)], Target] = {}
    """Reply ids that lead into this flow from any state, any time later: the quick-reply buttons of a
    template the shop sent (`appt:confirm:{appointment}: confirm`)."""


@dataclass(frozen=True)
class Flow:
    """One loaded flow file: its header and its states, every one of them validated."""

    name: str
    start: str
    states: Mapping[str, State]
    fallback: FallbackSpec | None
    file: Path
    replies: Mapping[str, str] = field(default_factory=dict)
    """Reply id pattern -> target: template buttons that lead here from anywhere (see FlowHeader)."""


_MODELS: tuple[type[_Spec], ...] = (State, FlowHeader, ButtonSpec, ListSpec, ListSectionSpec, ListRowSpec)
_MODELS += (MediaSpec, TemplateSpec, OnSpec, FallbackSpec, TimeoutSpec, AskSpec, ConditionSpec, BranchSpec)
KNOWN_KEYS = sorted({f.alias or n for m in _MODELS for n, f in m.model_fields.items()} | {"states"})
