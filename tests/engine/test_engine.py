"""The engine through its public door: load_flows + Engine.handle, on the shipped flow and small ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.db import close_db, init_db
from bot.engine import (
    ActionContext,
    ActionError,
    ActionRegistry,
    ActionResult,
    Conversation,
    Customer,
    Engine,
    Event,
    FlowSet,
    Outcome,
    check_flows,
    load_flows,
)
from bot.whatsapp.outbound import Buttons, ListMessage, Media, ReplyButton, Template, Text
from tests.helpers import FLOWS, TEMPLATES, shop_actions, write_flow

ANA = Customer(wa_id="34600111222", name="Ana", language="en")


def with_stub_handoff() -> FlowSet:
    """The shipped flows with the `handoff` action stubbed: the real one needs a database."""
    shop = shop_actions()
    registry = ActionRegistry()
    for name in shop:
        spec = shop.get(name)
        assert spec is not None
        if name != "handoff":
            registry.add(name, spec.func, args_model=spec.args_model, targets=spec.targets)

    async def handoff(context: ActionContext) -> ActionResult:
        return ActionResult(variables={"wait_text": "A technician will answer soon."})

    registry.add("handoff", handoff)
    return load_flows(FLOWS, registry)


def say(flows: FlowSet, state: str, language: str = "en", flow: str = "main") -> str:
    text = flows.flows[flow].states[state].say
    assert isinstance(text, dict)
    return text[language]


def write_flows(
    directory: Path, actions: ActionRegistry | None = None, templates: Path | None = None, **files: str
) -> FlowSet:
    for name, text in files.items():
        write_flow(directory, f"{name}.yaml", text)
    return load_flows(directory, actions, templates)


async def send(engine: Engine, at: Outcome | None, event: Event, customer: Customer = ANA) -> Outcome:
    conversation = (
        Conversation(None, None, {}) if at is None else Conversation(at.flow, at.state, at.variables)
    )
    return await engine.handle(conversation, customer, event)


async def test_new_conversation_is_greeted_by_name_with_the_menu_buttons(shipped: FlowSet) -> None:
    outcome = await send(Engine(shipped), None, Event.of_text("hello"))
    assert (outcome.flow, outcome.state) == ("main", "menu")
    assert outcome.outbound == [
        Buttons(
            body="Hi Ana! 👋 What can we do for you?",
            buttons=(
                ReplyButton(id="order", title="Repair status"),
                ReplyButton(id="booking", title="Appointment"),
                ReplyButton(id="human", title="Technician"),
            ),
        )
    ]


async def test_unknown_profile_name_renders_a_fallback_or_nothing(shipped: FlowSet) -> None:
    engine = Engine(shipped)
    english = await send(engine, None, Event.of_text("hi"), Customer("1", None, "en"))
    spanish = await send(engine, None, Event.of_text("hola"), Customer("1", None, "es"))
    assert isinstance(english.outbound[0], Buttons) and isinstance(spanish.outbound[0], Buttons)
    assert english.outbound[0].body == "Hi there! 👋 What can we do for you?"
    assert spanish.outbound[0].body == "¡Hola! 👋 ¿En qué podemos ayudarte?"


@pytest.mark.parametrize(
    ("event", "state"),
    [
        (Event.of_reply("human", "Technician"), "technician"),
        (Event.of_text("técnico"), "technician"),
        (Event.of_text("tecnico"), "technician"),
        (Event.of_text("Can I talk to a human?"), "technician"),
        (Event.of_text("我要人工服务"), "technician"),
        (Event.of_text("agent"), "technician"),
    ],
)
async def test_buttons_and_keywords_reach_a_technician(event: Event, state: str) -> None:
    """The technician state calls `handoff` and says its {wait_text}; the state waits there, silent,
    for a person (bot/handoff/)."""
    engine = Engine(with_stub_handoff())
    start = await send(engine, None, Event.of_text("hi"))
    outcome = await send(engine, start, event)
    assert outcome.outbound == [Text(body="A technician will answer soon.")]
    assert (outcome.flow, outcome.state) == ("main", state)


@pytest.mark.parametrize(
    "event",
    [
        Event.of_reply("booking", "Appointment"),
        Event.of_text("I'd like to book a repair"),
        Event.of_text("Quiero una CITA"),
        Event.of_text("预约"),
    ],
)
async def test_the_appointment_button_and_words_start_a_booking(
    shipped: FlowSet, event: Event, tmp_path: Path
) -> None:
    await init_db("sqlite://:memory:", migrate_schema=True)  # the flow reads the customer's bookings
    try:
        engine = Engine(shipped)
        start = await send(engine, None, Event.of_text("hi"))
        outcome = await send(engine, start, event)
    finally:
        await close_db()
    assert outcome.flow == "appointments"
    assert outcome.outbound[0] == Text(body=say(shipped, "offer", flow="appointments"))


@pytest.mark.parametrize(
    "event",
    [
        Event.of_reply("order", "Repair status"),
        Event.of_text("What's the status of my phone?"),
        Event.of_text("ESTADO"),
        Event.of_text("mi reparación"),
        Event.of_text("reparacion"),
        Event.of_text("维修进度怎么样"),
    ],
)
async def test_the_repair_status_button_and_words_lead_to_the_order_lookup(
    shipped: FlowSet, event: Event, tmp_path: Path
) -> None:
    await init_db("sqlite://:memory:", migrate_schema=True)  # the lookup reads the customer's orders
    try:
        engine = Engine(shipped)
        start = await send(engine, None, Event.of_text("hi"))
        outcome = await send(engine, start, event)
    finally:
        await close_db()
    assert (outcome.flow, outcome.state) == ("orders", "ask_number")  # no open orders: asks for one
    assert outcome.outbound == [Text(body=say(shipped, "ask_number", flow="orders"))]


@pytest.mark.parametrize("greeting", ["hi", "Hello!", "hola", "你好", "MENU", "menú"])
async def test_greetings_show_the_menu_again(shipped: FlowSet, greeting: str) -> None:
    engine = Engine(shipped)
    start = await send(engine, None, Event.of_text("hi"))
    outcome = await send(engine, start, Event.of_text(greeting))
    assert outcome.outbound == start.outbound
    assert outcome.state == "menu"


@pytest.mark.parametrize(
    ("event", "state"),
    [
        (Event(type="image"), "got_photo"),
        (Event(type="image", text="my broken screen"), "got_photo"),
        (Event(type="video"), "got_file"),
        (Event(type="document"), "got_file"),
        (Event(type="audio"), "got_voice"),
        (Event(type="sticker"), "cannot_read"),
        (Event(type="location"), "cannot_read"),
        (Event(type="contacts"), "cannot_read"),
        (Event(type="unsupported"), "cannot_read"),
    ],
)
async def test_media_and_unsupported_messages_get_a_polite_answer(
    shipped: FlowSet, event: Event, state: str
) -> None:
    engine = Engine(shipped)
    start = await send(engine, None, Event.of_text("hi"))
    outcome = await send(engine, start, event)
    assert outcome.outbound[0] == Text(body=say(shipped, state))
    assert outcome.state == "menu"
    assert "_misses" not in outcome.variables


async def test_reactions_are_not_answered(shipped: FlowSet) -> None:
    engine = Engine(shipped)
    start = await send(engine, None, Event.of_text("hi"))
    outcome = await send(engine, start, Event(type="reaction", text="👍"))
    assert outcome.outbound == [] and outcome.state == "menu" and outcome.variables == {}


async def test_two_misses_in_a_row_offer_help_and_a_match_resets_the_count(shipped: FlowSet) -> None:
    engine = Engine(shipped)
    fallback = shipped.flows["main"].fallback
    assert fallback is not None and isinstance(fallback.say, dict)
    start = await send(engine, None, Event.of_text("hi"))

    first = await send(engine, start, Event.of_text("asdf"))
    assert first.outbound == [Text(body=fallback.say["en"])]
    assert (first.state, first.variables) == ("menu", {"_misses": 1})

    matched = await send(engine, first, Event.of_text("hello"))  # a match in between
    assert matched.variables == {}
    again = await send(engine, matched, Event.of_text("qwerty"))
    assert again.outbound == [Text(body=fallback.say["en"])]

    second = await send(engine, again, Event.of_text("zzz"))
    assert second.state == "help" and second.variables == {}
    [offer] = second.outbound
    assert isinstance(offer, ListMessage)
    assert offer.body == say(shipped, "help")
    assert [row.id for row in offer.sections[0].rows] == ["order", "booking", "human", "menu"]
    assert "Technician" in [row.title for row in offer.sections[0].rows]

    picked = await send(Engine(with_stub_handoff()), second, Event.of_reply("human", "Technician"))
    assert picked.outbound[0] == Text(body="A technician will answer soon.")
    still_lost = await send(engine, second, Event.of_text("???"))
    assert still_lost.state == "help" and len(still_lost.outbound) == 1


@pytest.mark.parametrize(
    ("language", "expected"),
    [("es", "es"), ("zh", "zh"), ("es_MX", "es"), ("zh-Hant", "zh"), ("fr", "en"), ("", "en")],
)
async def test_customers_get_their_language(shipped: FlowSet, language: str, expected: str) -> None:
    engine = Engine(shipped)
    customer = Customer("86138000", "Li", language)
    start = await send(engine, None, Event.of_text("hi"), customer)
    assert isinstance(start.outbound[0], Buttons)
    titles = {"en": "Technician", "es": "Técnico", "zh": "技术员"}
    assert start.outbound[0].buttons[2].title == titles[expected]
    assert start.outbound[0].body.startswith(say(shipped, "menu", expected).split("{")[0][:2])


async def test_handle_does_not_touch_the_conversation_it_is_given(shipped: FlowSet) -> None:
    conversation = Conversation("main", "menu", {"_misses": 1, "kept": "yes"})
    outcome = await Engine(shipped).handle(conversation, ANA, Event.of_text("nonsense"))
    assert conversation == Conversation("main", "menu", {"_misses": 1, "kept": "yes"})
    assert outcome.state == "help" and outcome.variables == {"kept": "yes"}


async def test_goto_chains_send_every_state_in_order(tmp_path: Path) -> None:
    flows = write_flows(
        tmp_path,
        main="""
        flow: main
        start: a
        states:
          a: {say: "One", goto: b}
          b: {say: "Two, {customer.phone}", goto: other.c}
        """,
        other="""
        flow: other
        start: c
        states:
          c:
            say: "Three for {who}{missing}"
            media: {type: image, link: "https://example.com/a.jpg", caption: "{who}"}
            template: {name: repair_ready, params: ["{who}", "x"]}
        """,
    )
    outcome = await Engine(flows).handle(Conversation(None, None, {"who": "Ana"}), ANA, Event.of_text("x"))
    assert (outcome.flow, outcome.state) == ("other", "c")
    assert outcome.outbound == [
        Text(body="One"),
        Text(body="Two, +34600111222"),
        Text(body="Three for Ana"),
        Media(media_type="image", link="https://example.com/a.jpg", caption="Ana"),
        Template(name="repair_ready", language="en", body_params=("Ana", "x")),
    ]
    # the states passed through count as entered (the conversation's steps, for the funnels)
    assert outcome.entered == [("main", "a"), ("main", "b"), ("other", "c")]
    assert outcome.sent_from == ["main", "main", "other", "other", "other"]  # the flow of each message


MENU_AND_QUESTION = """
flow: main
start: menu
states:
  menu:
    say: Menu
    buttons: [{id: ask, title: Ask}, {id: bye, title: Bye}]
    on: {ask: question, bye: goodbye}
  question:
    say: Your order number?
    on:
      pattern: {'^#?(?P<order>\\d{4,8})$': got_number}
    fallback: {say: "Digits please"}
  got_number:
    say: "Looking up {order}"
  goodbye:
    say: Bye
"""


async def test_old_menu_buttons_and_pattern_captures(tmp_path: Path) -> None:
    flows = write_flows(tmp_path, main=MENU_AND_QUESTION)
    engine = Engine(flows)
    question = Outcome("main", "question", {}, [])
    number = await send(engine, question, Event.of_text(" #123456 "))
    assert (number.state, number.variables) == ("got_number", {"order": "123456"})
    assert number.outbound == [Text(body="Looking up 123456")]
    tapped = await send(engine, question, Event.of_reply("bye", "Bye"))  # the menu's button, tapped later
    assert (tapped.state, tapped.outbound) == ("goodbye", [Text(body="Bye")])
    unknown = await send(engine, question, Event.of_reply("nope", "Nope"))
    assert (unknown.state, unknown.outbound) == ("question", [Text(body="Digits please")])


async def test_replace_flows_restarts_a_conversation_whose_state_is_gone(tmp_path: Path) -> None:
    engine = Engine(write_flows(tmp_path / "v1", main=MENU_AND_QUESTION))
    engine.replace_flows(  # with the shipped templates/texts/: the engine's own words
        write_flows(
            tmp_path / "v2",
            templates=TEMPLATES,
            main="flow: main\nstart: home\nstates:\n  home: {say: Welcome back}\n",
        )
    )
    outcome = await send(
        engine, Outcome("main", "question", {"_misses": 1, "name": "Ana"}, []), Event.of_text("1234")
    )
    assert (outcome.flow, outcome.state) == ("main", "home")
    assert outcome.outbound == [
        Text(body="Sorry, our menu has changed since your last message, so let's start again."),
        Text(body="Welcome back"),
    ]
    assert outcome.variables == {"name": "Ana"}
    gone_flow = await send(
        engine, Outcome("orders", "ask", {}, []), Event.of_text("hi"), Customer("1", None, "es")
    )
    assert gone_flow.state == "home" and gone_flow.outbound[0].log_content().startswith("Perdona")
    with pytest.raises(ValueError, match="no default flow"):
        engine.replace_flows(FlowSet({}))


async def test_actions_set_variables_send_messages_and_choose_the_next_state(tmp_path: Path) -> None:
    registry = ActionRegistry()
    seen: list[dict[str, Any]] = []

    @registry.register("orders.lookup", targets=("found", "missing"))
    async def lookup(context: ActionContext) -> ActionResult:
        seen.append(dict(context.args))
        if context.args["number"] == "1234":
            return ActionResult([Text(body="Order 1234")], {"status": "ready"}, next="found")
        return ActionResult(next="missing")

    @registry.register("broken")
    async def broken(context: ActionContext) -> None:
        raise RuntimeError("database down")

    flows = write_flows(
        tmp_path,
        registry,
        main="""
        flow: main
        start: ask
        states:
          ask:
            say: Number?
            on: {pattern: {'^(?P<number>\\d+)$': lookup}, text: crash}
          lookup:
            call: orders.lookup
            args: {number: "{number}", found: show, missing: ask}
          show: {say: "It is {status}"}
          crash: {call: broken}
        """,
    )
    assert "unknown action 'broken'" in str(check_flows(tmp_path))  # the registry is what makes them valid
    engine = Engine(flows)
    found = await send(engine, Outcome("main", "ask", {}, []), Event.of_text("1234"))
    assert (found.state, found.variables["status"]) == ("show", "ready")
    assert found.outbound == [Text(body="Order 1234"), Text(body="It is ready")]
    missing = await send(engine, Outcome("main", "ask", {}, []), Event.of_text("99"))
    assert (missing.state, missing.outbound) == ("ask", [Text(body="Number?")])
    assert seen[0] == {"number": "1234", "found": "show", "missing": "ask"}
    with pytest.raises(ActionError, match="database down"):
        await send(engine, Outcome("main", "ask", {}, []), Event.of_text("what"))


async def test_a_loop_through_actions_stops_after_ten_states(tmp_path: Path) -> None:
    registry = ActionRegistry()

    @registry.register("again", targets=("to",))
    async def again(context: ActionContext) -> ActionResult:
        return ActionResult(next="to")

    flows = write_flows(
        tmp_path, registry, main="flow: main\nstart: a\nstates:\n  a: {say: A, call: again, args: {to: a}}\n"
    )
    outcome = await Engine(flows).handle(Conversation(None, None, {}), ANA, Event.of_text("x"))
    assert outcome.state == "a" and len(outcome.outbound) == 10
