"""`bot flows test [DIR]`: conversation tests staff write in YAML beside the flows, run on the simulator.

A test file (DIR/tests/*.yaml) lists tests; each is a customer's turns and the replies expected, checked
in order and count. The clock is the simulator's, so `wait: 25h` takes no time. A failure prints the
conversation so far with the first difference marked. Exit 0: all pass; 1: failures; 2: a test file or
the flows have problems (printed as file:line:column: reason).
"""

from __future__ import annotations

import asyncio
import difflib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from bot.appointments.service import AppointmentService
from bot.cli.chat import bot_lines
from bot.cli.simulator import (
    DEFAULT_PHONE,
    ChoiceError,
    MediaKind,
    Reply,
    SimClock,
    SimCustomer,
    Simulator,
    choices_of,
)
from bot.db.config import MEMORY, sqlite_url
from bot.db.models import AppointmentStatus, Order
from bot.engine import FlowLoadError, FlowProblem, FlowSet
from bot.engine.content import served
from bot.engine.marked_yaml import MarkedSource, YamlPath
from bot.engine.schema import Duration, flow_error, format_duration
from bot.settings import Settings
from bot.whatsapp.outbound import Buttons, ListMessage, Media, OutboundMessage, Template, Text
from bot.wiring import load_flow_set, load_shop_content, registered_actions

TESTS_FOLDER = "tests"
DEFAULT_START = datetime(2026, 3, 2, 10, 0)
"""A Monday morning in the shop's time zone, unless a test says `at:`: results never depend on today."""
GOT_WIDTH = 90
DATABASE = sqlite_url(MEMORY)
"""The tests' own database, emptied before each test."""


# ---- the test-file format


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


def _pattern(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        hint = "a literal ( [ . ? * + needs a \\ before it"
        raise flow_error(f"invalid pattern: {exc.msg}", hint) from None
    return value


def _listed(value: Any) -> Any:
    """`expect:` may be one reply (a mapping) instead of a list; a bare text means `contains`."""
    items = [value] if isinstance(value, dict | str) else value
    if isinstance(items, list):
        return [{"contains": item} if isinstance(item, str) else item for item in items]
    return items


class CustomerSpec(_Strict):
    name: str | None = None
    phone: Annotated[str, Field(pattern=r"^\+?\d{6,15}$")] = DEFAULT_PHONE
    language: str | None = None


class Expected(_Strict):
    """One reply: its text (exact, contains or pattern) and/or its buttons, rows, media, template, refusal."""

    text: str | None = None
    contains: str | None = None
    pattern: str | None = None
    buttons: list[str] | None = None
    rows: list[str] | None = None
    media: MediaKind | None = None
    template: str | None = None
    refused: int | None = None

    @model_validator(mode="after")
    def _one_text_check(self) -> Expected:
        given = [key for key in ("text", "contains", "pattern") if getattr(self, key) is not None]
        if len(given) > 1:
            raise flow_error(f"use one of text, contains or pattern, not {' and '.join(given)}")
        if not self.model_fields_set:
            raise flow_error("an expected reply needs text, contains, pattern, buttons, rows or template")
        if self.pattern is not None:
            _pattern(self.pattern)
        return self

    def describe(self) -> str:
        parts = []
        for key in ("text", "contains", "pattern"):
            if (value := getattr(self, key)) is not None:
                parts.append(f'{key} "{value}"')
        if self.buttons is not None:
            parts.append(f"buttons [{', '.join(self.buttons)}]")
        if self.rows is not None:
            parts.append(f"rows [{', '.join(self.rows)}]")
        if self.media is not None:
            parts.append(f"media {self.media}")
        if self.template is not None:
            parts.append(f"template {self.template}")
        if self.refused is not None:
            parts.append(f"refused {self.refused}")
        return ", ".join(parts)


TURN_ACTIONS = ("send", "tap", "media", "wait")


class Turn(_Strict):
    """What the customer does (send, tap, media or wait), and the replies expected (omit: not checked)."""

    send: str | None = None
    tap: str | None = None
    media: MediaKind | None = None
    caption: str | None = None
    filename: str | None = None
    wait: Duration | None = None
    expect: Annotated[list[Expected], BeforeValidator(_listed)] | None = None

    @model_validator(mode="after")
    def _one_action(self) -> Turn:
        given = [key for key in TURN_ACTIONS if getattr(self, key) is not None]
        if len(given) != 1:
            raise flow_error(
                "a turn needs exactly one of send, tap, media or wait"
                + (f", not {' and '.join(given)}" if given else ""),
                "start a new '- ' item for the next turn",
            )
        if (self.caption is not None or self.filename is not None) and self.media is None:
            raise flow_error("caption and filename go with media", "write media: image")
        return self

    def describe(self) -> str:
        if self.send is not None:
            return f"you: {self.send}"
        if self.tap is not None:
            return f"you: [tap] {self.tap}"
        if self.media is not None:
            extra = self.caption or self.filename
            return f"you: [{self.media}]" + (f" {extra}" if extra else "")
        assert self.wait is not None
        return f"(… {format_duration(self.wait)} later)"


class OrderSeed(_Strict):
    """A repair order the shop's system already sent in before the test starts (for order lookups)."""

    order_number: str = Field(min_length=1)
    device_model: str = "phone"
    status: str = "received"
    problem: str = ""
    customer_phone: Annotated[str, Field(pattern=r"^\+?\d{6,15}$")] | None = None
    """Whose order it is; default: the test's customer."""
    customer_name: str | None = None


class AppointmentSeed(_Strict):
    """An appointment already booked before the test starts (shop time when no zone is given)."""

    at: datetime
    device_model: str = "phone"
    status: Literal["booked", "confirmed", "rescheduled"] = "booked"


class FlowTest(_Strict):
    name: str = Field(min_length=1)
    customer: CustomerSpec = CustomerSpec()
    orders: list[OrderSeed] = []
    appointments: list[AppointmentSeed] = []
    at: datetime | None = None
    """When the test starts (shop time when no zone is given); default: a Monday at 10:00."""
    turns: list[Turn] = Field(min_length=1)


class TestFile(_Strict):
    tests: list[FlowTest] = Field(min_length=1)


_KEYS = sorted(
    {
        name
        for model in (TestFile, FlowTest, CustomerSpec, Turn, Expected, OrderSeed, AppointmentSeed)
        for name in model.model_fields
    }
)


@dataclass
class LoadedFile:
    path: Path
    source: MarkedSource
    spec: TestFile

    def line_of(self, path: YamlPath) -> int:
        mark = self.source.marks.get(path)
        return mark.line + 1 if mark else 1


def load_test_file(path: Path) -> LoadedFile | list[FlowProblem]:
    """The validated file, or its problems with file:line:column."""
    source = MarkedSource(str(path))
    try:
        data = source.parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return [FlowProblem(str(path), 1, 1, f"cannot read the file: {exc}")]
    if source.problems:
        return source.problems
    try:
        spec = TestFile.model_validate(data)
    except ValidationError as exc:
        _add_problems(source, exc)
        return source.problems
    return LoadedFile(path, source, spec)


def _add_problems(source: MarkedSource, exc: ValidationError) -> None:
    for error in exc.errors(include_url=False):
        loc: YamlPath = tuple(part for part in error["loc"] if not str(part).startswith("function-"))
        ctx = error.get("ctx") or {}
        hint = ctx.get("hint")
        key = False
        if error["type"] == "extra_forbidden":
            key = True
            reason = f"unknown key '{loc[-1]}'"
            close = difflib.get_close_matches(str(loc[-1]), _KEYS, 1)
            hint = f"did you mean '{close[0]}'?" if close else "check the spelling and the indentation"
        elif error["type"] == "missing":
            reason = f"'{loc[-1]}' is missing here"
        elif error["type"] == "literal_error":
            reason = f"expected {ctx.get('expected', 'another value')} here"
        elif error["type"] == "model_type" and not loc:
            reason = "a test file starts with 'tests:' and a list of tests"
        else:
            reason = error["msg"]
        source.add(loc, reason, hint, key=key)


def test_files(directory: Path) -> list[Path]:
    folder = directory / TESTS_FOLDER
    return sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]) if folder.is_dir() else []


# ---- running


@dataclass
class Outcome:
    name: str
    passed: bool
    where: str = ""
    transcript: list[str] = field(default_factory=list)


def main_text(message: OutboundMessage) -> str:
    if isinstance(message, Text | Buttons | ListMessage):
        return message.body
    if isinstance(message, Media):
        return message.caption or ""
    if isinstance(message, Template):
        return " | ".join(message.body_params)
    return ""


def _quote(text: str) -> str:
    one_line = " ".join(text.split())
    return '"' + (one_line if len(one_line) <= GOT_WIDTH else one_line[: GOT_WIDTH - 1] + "…") + '"'


def mismatch(expected: Expected, reply: Reply) -> str | None:
    """Why the reply is not the one expected ('expected: … — got: …'), or None when it is."""
    message, body = reply.message, main_text(reply.message)
    if (expected.refused is not None or reply.refused) and reply.error_code != expected.refused:
        want = f"refused {expected.refused}" if expected.refused is not None else expected.describe()
        got = f"refused {reply.error_code}" if reply.refused else "delivered"
        return f"expected: {want} — got: {got} {_quote(body)}"
    if expected.text is not None and body != expected.text:
        return f'expected: text "{expected.text}" — got: {_quote(body)}'
    if expected.contains is not None and expected.contains.casefold() not in body.casefold():
        return f'expected: contains "{expected.contains}" — got: {_quote(body)}'
    if expected.pattern is not None and not re.search(expected.pattern, body):
        return f'expected: pattern "{expected.pattern}" — got: {_quote(body)}'
    titles = [choice.title for choice in reply.choices]
    if expected.buttons is not None and (not isinstance(message, Buttons) or titles != expected.buttons):
        got = f"buttons [{', '.join(titles)}]" if isinstance(message, Buttons) else _kind(message)
        return f"expected: buttons [{', '.join(expected.buttons)}] — got: {got}"
    if expected.rows is not None and (not isinstance(message, ListMessage) or titles != expected.rows):
        got = f"rows [{', '.join(titles)}]" if isinstance(message, ListMessage) else _kind(message)
        return f"expected: rows [{', '.join(expected.rows)}] — got: {got}"
    if expected.media is not None:
        kind = ("voice" if message.voice else message.media_type) if isinstance(message, Media) else None
        if kind != expected.media and not (expected.media == "audio" and kind == "voice"):
            return f"expected: media {expected.media} — got: {_kind(message)}"
    if expected.template is not None and (
        not isinstance(message, Template) or message.name != expected.template
    ):
        return f"expected: template {expected.template} — got: {_kind(message)}"
    return None


def _kind(message: OutboundMessage) -> str:
    """A reply in a few words, for the `got:` side of a difference."""
    if isinstance(message, Template):
        return f"template {message.name}"
    if isinstance(message, Media):
        return f"{message.media_type} {_quote(main_text(message))}"
    text = _quote(main_text(message))
    titles = ", ".join(choice.title for choice in choices_of(message))
    if isinstance(message, Buttons):
        return f"{text} with buttons [{titles}]"
    if isinstance(message, ListMessage):
        return f"{text} with rows [{titles}]"
    return text


async def _act(customer: SimCustomer, turn: Turn) -> list[Reply]:
    if turn.send is not None:
        return await customer.says(turn.send)
    if turn.tap is not None:
        return await customer.taps(turn.tap)
    if turn.media is not None:
        return await customer.sends_media(turn.media, caption=turn.caption, filename=turn.filename)
    assert turn.wait is not None
    return await customer.wait(turn.wait)


def _start_time(test: FlowTest, timezone: str) -> datetime:
    start = test.at or DEFAULT_START
    return (start if start.tzinfo else start.replace(tzinfo=ZoneInfo(timezone))).astimezone(UTC)


async def run_test(simulator: Simulator, loaded: LoadedFile, index: int) -> Outcome:
    test = loaded.spec.tests[index]
    await simulator.wipe(_start_time(test, simulator.settings.shop.timezone))
    spec = test.customer
    for seed in test.orders:
        await Order.create(
            order_number=seed.order_number,
            customer_phone=(seed.customer_phone or spec.phone).lstrip("+"),
            customer_name=seed.customer_name or spec.name or "Customer",
            device_model=seed.device_model,
            problem=seed.problem,
            status=seed.status,
        )
    if test.appointments:
        zone = ZoneInfo(simulator.settings.shop.timezone)
        booking = AppointmentService(simulator.settings, simulator.content, clock=simulator.clock)
        for appointment in test.appointments:
            at = appointment.at if appointment.at.tzinfo else appointment.at.replace(tzinfo=zone)
            await booking.create(
                phone=spec.phone.lstrip("+"),
                name=spec.name,
                starts_at=at,
                device_model=appointment.device_model,
                status=AppointmentStatus(appointment.status),
            )
    customer = simulator.customer(spec.phone, spec.name, spec.language)
    transcript: list[str] = []
    for number, turn in enumerate(test.turns):
        transcript.append(turn.describe())
        where = f"{loaded.path}:{loaded.line_of(('tests', index, 'turns', number))} (turn {number + 1})"
        try:
            replies = await _act(customer, turn)
        except ChoiceError as exc:
            transcript.append(f">>> {exc}")
            return Outcome(test.name, False, where, transcript)
        difference = _compare(turn.expect, replies, transcript)
        if difference:
            return Outcome(test.name, False, where, transcript)
    return Outcome(test.name, True)


def _compare(expected: list[Expected] | None, replies: list[Reply], transcript: list[str]) -> bool:
    """Add the turn's replies to the transcript, marking the first difference; True if there is one."""
    for position, reply in enumerate(replies):
        transcript.extend(bot_lines([reply]))
        if expected is None:
            continue
        if position >= len(expected):
            transcript.append(f">>> expected: no more replies — got: {_kind(reply.message)}")
            return True
        why = mismatch(expected[position], reply)
        if why:
            transcript.append(f">>> {why}")
            return True
    if expected is not None and len(expected) > len(replies):
        transcript.append(f">>> expected: {expected[len(replies)].describe()} — got: no reply")
        return True
    return False


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def run_flow_tests(settings: Settings, directory: Path, out: Callable[[str], None] = print) -> int:
    """Run DIR/tests/*.yaml against DIR's flows; returns the exit code."""
    directory = directory.resolve()
    files = test_files(directory)
    if not files:
        out(f"no flow tests in {_shown(directory / TESTS_FOLDER)}: write some (see docs/flows.md)")
        return 0
    loaded: list[LoadedFile] = []
    problems: list[FlowProblem] = []
    for path in files:
        result = load_test_file(Path(_shown(path)))
        if isinstance(result, LoadedFile):
            loaded.append(result)
        else:
            problems.extend(result)
    local = settings.model_copy(
        update={
            "flows": settings.flows.model_copy(update={"directory": directory}),
            "database": settings.database.model_copy(update={"url": DATABASE}),  # the actions' too
        }
    )
    clock = SimClock()
    try:
        content = load_shop_content(local)  # read once: the flows and the actions' services share it
        actions = registered_actions(local, served(content), clock=clock)  # actions see the test's clock
        flows = load_flow_set(local, actions, content)
    except FlowLoadError as exc:
        problems = [*exc.problems, *problems]
    else:
        default = settings.flows.default_flow
        if default not in flows.flows:
            problems.append(FlowProblem(str(directory), 1, 1, f"there is no default flow '{default}' here"))
    if problems:
        for problem in problems:
            out(str(problem))
        out(f"{len(problems)} problem(s): fix them to run the flow tests")
        return 2
    return asyncio.run(_run_all(local, flows, clock, loaded, out))


async def _run_all(
    settings: Settings, flows: FlowSet, clock: SimClock, loaded: list[LoadedFile], out: Callable[[str], None]
) -> int:
    started = time.perf_counter()
    passed = failed = 0
    async with Simulator(settings, DATABASE, clock=clock, flows=flows) as simulator:
        for file in loaded:
            out(str(file.path))
            for index in range(len(file.spec.tests)):
                outcome = await run_test(simulator, file, index)
                if outcome.passed:
                    passed += 1
                    out(f"  ✓ {outcome.name}")
                    continue
                failed += 1
                out(f"  ✗ {outcome.name}")
                out(f"      at {outcome.where}")
                for line in outcome.transcript:
                    out(f"      {line}")
    elapsed = time.perf_counter() - started
    total = passed + failed
    summary = f"{total} test(s): {passed} passed" + (f", {failed} failed" if failed else "")
    out(f"{summary} ({elapsed:.2f} s)")
    return 1 if failed else 0
