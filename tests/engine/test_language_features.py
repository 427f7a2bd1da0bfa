"""The flow language's newer steps through Engine.handle: ask, choose, timeout and the language command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.engine import Conversation, Customer, Engine, Event, FlowSet, Outcome, load_flows
from bot.whatsapp.outbound import Buttons, Text
from tests.helpers import TEMPLATES, write_flow

ANA = Customer(wa_id="34600111222", name="Ana", language="en")
# a Wednesday, late evening in New York: already Thursday in UTC
NOW = datetime(2026, 11, 26, 2, 30, tzinfo=UTC)

BOOKING = """
    flow: main
    start: menu
    states:
      menu:
        say: {en: "Hi! Type book to start.", es: "¡Hola! Escribe cita para empezar."}
        on:
          keywords:
            ask_phones: [book, cita]
      ask_phones:
        say: {en: "How many phones?", es: "¿Cuántos teléfonos?"}
        ask: {save_as: phones, expect: number, min: 1, max: 5, then: ask_day}
        on:
          keywords:
            menu: [menu]
      ask_day:
        say: Which day?
        ask: {save_as: day, expect: date, then: ask_time}
      ask_time:
        say: What time?
        ask: {save_as: time, expect: time, then: ask_brand}
      ask_brand:
        say: Which brand?
        buttons:
          - {id: apple, title: Apple}
          - {id: samsung, title: Samsung}
        ask:
          save_as: brand
          choices: {apple: [iphone], samsung: [galaxy], other: []}
          retry: "Tap Apple or Samsung, or type other."
          then: route
      route:
        choose:
          - if: {brand: apple, phones: {above: 1}}
            goto: apple_many
          - if: {brand: [apple, samsung]}
            goto: known
          - goto: other
      apple_many:
        say: "{phones} Apple phones on {day} at {time}."
        goto: menu
      known:
        say: "One {brand} on {day} at {time}."
        goto: menu
      other:
        say: We'll see what we can do.
        goto: menu
    fallback:
      after: 3
      goto: menu
"""


def flows_from(tmp_path: Path, text: str) -> FlowSet:
    write_flow(tmp_path, "main.yaml", text)
    return load_flows(tmp_path, templates=TEMPLATES)  # the shipped texts: the engine's own words


def texts(outcome: Outcome) -> list[str]:
    return [m.body for m in outcome.outbound if isinstance(m, Text | Buttons)]


class Chat:
    """One customer's conversation, carried from turn to turn like the inbox does."""

    def __init__(self, engine: Engine, customer: Customer = ANA) -> None:
        self.engine = engine
        self.customer = customer
        self.at = Conversation(None, None, {})

    async def send(self, event: Event | str, now: datetime = NOW) -> Outcome:
        event = Event.of_text(event) if isinstance(event, str) else event
        outcome = await self.engine.handle(self.at, self.customer, event, now)
        self.at = Conversation(outcome.flow, outcome.state, outcome.variables)
        if outcome.language:
            self.customer = Customer(self.customer.wa_id, self.customer.name, outcome.language)
        return outcome


@pytest.fixture
def booking(tmp_path: Path) -> Engine:
    return Engine(flows_from(tmp_path, BOOKING), timezone="America/New_York", date_order="MDY")


async def test_answers_are_saved_and_branch_on_their_values(booking: Engine) -> None:
    chat = Chat(booking)
    await chat.send("hi")
    assert texts(await chat.send("book")) == ["How many phones?"]
    assert texts(await chat.send("two? no, 2")) == ["Which day?"]
    assert texts(await chat.send("tomorrow")) == ["What time?"]
    assert texts(await chat.send("2:30pm")) == ["Which brand?"]
    outcome = await chat.send("an iPhone 12")
    # "tomorrow" is the shop's tomorrow: Wednesday 25 in New York, so Thursday 26 November
    assert texts(outcome)[0] == "2 Apple phones on 2026-11-26 at 14:30."
    assert outcome.variables["phones"] == 2
    assert (outcome.flow, outcome.state) == ("main", "menu")


async def test_a_button_tap_answers_a_choice(booking: Engine) -> None:
    chat = Chat(booking)
    for turn in ("hi", "book", "1", "12/24", "9am"):
        await chat.send(turn)
    outcome = await chat.send(Event.of_reply("samsung", "Samsung"))
    assert texts(outcome)[0] == "One samsung on 2026-12-24 at 09:00."


async def test_an_answer_that_does_not_fit_is_asked_again_with_a_hint(booking: Engine) -> None:
    chat = Chat(booking)
    await chat.send("hi")
    await chat.send("book")
    assert texts(await chat.send("many")) == ["Please answer with a number from 1 to 5."]
    assert texts(await chat.send("9")) == ["Please answer with a number from 1 to 5."]
    assert chat.at.state == "ask_phones"
    assert texts(await chat.send("3")) == ["Which day?"]
    assert texts(await chat.send("someday")) == ['Please send a date, like 12/25 or "tomorrow".']
    await chat.send("friday")
    assert chat.at.variables["day"] == "2026-11-27"
    assert texts(await chat.send("later")) == ["Please send a time, like 14:30 or 2:30pm."]
    await chat.send("10:15")
    assert texts(await chat.send("nokia")) == ["Tap Apple or Samsung, or type other."]


async def test_escapes_in_on_win_over_the_answer_and_misses_lead_to_the_fallback(booking: Engine) -> None:
    chat = Chat(booking)
    await chat.send("hi")
    await chat.send("book")
    assert texts(await chat.send("menu")) == ["Hi! Type book to start."]
    await chat.send("book")
    await chat.send("x")
    await chat.send("y")
    outcome = await chat.send("z")  # the third miss in a row: the fallback's goto
    assert (outcome.state, texts(outcome)) == ("menu", ["Hi! Type book to start."])


async def test_a_state_with_a_timeout_asks_for_a_timer_and_the_timeout_event_moves_it(
    tmp_path: Path,
) -> None:
    engine = Engine(
        flows_from(
            tmp_path,
            """
            flow: main
            start: menu
            states:
              menu:
                say: Hi
                on:
                  text: waiting
              waiting:
                say: Anything else?
                on:
                  keywords: {menu: [menu]}
                  timeout: {after: 30m, goto: bye}
              bye:
                say: Talk soon!
                goto: menu
            """,
        )
    )
    chat = Chat(engine)
    assert (await chat.send("hi")).wait is None
    waiting = await chat.send("hello")
    assert (waiting.state, waiting.wait) == ("waiting", timedelta(minutes=30))
    fired = await chat.send(Event(type="timeout"))
    assert (fired.state, texts(fired), fired.wait) == ("menu", ["Talk soon!", "Hi"], None)
    # a stray timeout where none is waiting is ignored, silently
    stray = await chat.send(Event(type="timeout"))
    assert (stray.state, stray.outbound) == ("menu", [])


async def test_the_language_command_switches_and_asks_the_pending_question_again(booking: Engine) -> None:
    chat = Chat(booking)
    await chat.send("hi")
    await chat.send("book")
    menu = await chat.send("LANGUAGE")
    assert isinstance(menu.outbound[0], Buttons)
    assert [(b.id, b.title) for b in menu.outbound[0].buttons] == [
        ("_lang:en", "English"),
        ("_lang:es", "Español"),
        ("_lang:zh", "中文"),
    ]
    assert menu.state == "ask_phones"
    switched = await chat.send(Event.of_reply("_lang:es", "Español"))
    assert switched.language == "es"
    assert texts(switched) == [
        "Perfecto, a partir de ahora te escribo en español.",
        "¿Cuántos teléfonos?",
    ]
    # remembered: the next turn is in Spanish without asking again
    assert texts(await chat.send("menu")) == ["¡Hola! Escribe cita para empezar."]
    back = await chat.send("english")
    assert back.language == "en" and texts(back)[0] == "OK, I'll write in English from now on."


async def test_only_the_shops_languages_are_offered(tmp_path: Path) -> None:
    engine = Engine(flows_from(tmp_path, BOOKING), languages=["en", "es"])
    chat = Chat(engine)
    menu = await chat.send("idioma")
    assert isinstance(menu.outbound[0], Buttons)
    assert [b.title for b in menu.outbound[0].buttons] == ["English", "Español"]
    assert (await chat.send("中文")).language is None  # not offered: an ordinary message


async def test_a_silent_timeout_moves_without_a_word(tmp_path: Path) -> None:
    engine = Engine(
        flows_from(
            tmp_path,
            """
            flow: main
            start: menu
            states:
              menu:
                say: Hi
                on:
                  keywords: {help: [help]}
              help:
                say: Pick one of the options, or type menu.
                on:
                  keywords: {menu: [menu]}
                  timeout: {after: 30m, goto: menu, silent: true}
            """,
        )
    )
    chat = Chat(engine)
    await chat.send("hi")
    assert (await chat.send("help")).wait == timedelta(minutes=30)
    quiet = await chat.send(Event(type="timeout"))
    assert (quiet.state, quiet.outbound) == ("menu", [])
    assert texts(await chat.send("help")) == ["Pick one of the options, or type menu."]  # read at menu


async def test_a_first_message_the_menu_understands_is_answered_not_just_greeted(booking: Engine) -> None:
    chat = Chat(booking)
    assert texts(await chat.send("I want to book")) == ["How many phones?"]
    other = Chat(booking, Customer("2", "Bo", "en"))
    assert texts(await other.send("good morning")) == ["Hi! Type book to start."]  # not understood: greeted


async def test_the_menus_words_work_in_every_state(booking: Engine) -> None:
    chat = Chat(booking)
    for turn in ("book", "2", "tomorrow", "10am"):
        await chat.send(turn)
    assert chat.at.state == "ask_brand"  # it has no keywords of its own
    assert texts(await chat.send("cita")) == ["How many phones?"]  # the menu's keyword, from here


REPLIES = """
    flow: main
    start: menu
    replies:
      "appt:confirm:{appointment}": confirmed
    states:
      menu:
        say: Hi
        on:
          keywords: {elsewhere: [help]}
      elsewhere:
        say: Ask me anything.
        on:
          text: menu
      confirmed:
        say: "Appointment {appointment} is confirmed, see you!"
        goto: menu
"""


async def test_a_template_button_reaches_its_flow_from_any_state(tmp_path: Path) -> None:
    engine = Engine(flows_from(tmp_path, REPLIES))
    chat = Chat(engine)
    await chat.send("hi")
    await chat.send("help")
    assert chat.at.state == "elsewhere"
    tapped = await chat.send(Event(type="button", text="Confirm", reply_id="appt:confirm:42"))
    assert texts(tapped) == ["Appointment 42 is confirmed, see you!", "Hi"]
    assert tapped.variables["appointment"] == "42"
    # a customer whose first contact is the template's button gets there too
    fresh = Chat(engine, Customer("3", "Cy", "en"))
    assert texts(await fresh.send(Event(type="button", text="Confirm", reply_id="appt:confirm:7")))[0] == (
        "Appointment 7 is confirmed, see you!"
    )
    # an id that does not fit the pattern is an ordinary, unknown reply
    other = await chat.send(Event(type="button", text="Confirm", reply_id="appt:confirm:"))
    assert other.state == "menu" and "confirmed" not in " ".join(texts(other))


def test_replies_must_lead_somewhere_and_be_patterns(tmp_path: Path) -> None:
    from bot.engine import check_flows

    broken = REPLIES.replace(
        '"appt:confirm:{appointment}": confirmed', '"{x}": confirmd\n      "appt:{a b}": menu'
    )
    write_flow(tmp_path, "main.yaml", broken)
    found = [p.reason for p in check_flows(tmp_path)]
    assert "'{x}' is not a reply id pattern" in found
    assert "'appt:{a b}' is not a reply id pattern" in found


def test_a_reply_leading_to_a_missing_state_is_named(tmp_path: Path) -> None:
    from bot.engine import check_flows

    write_flow(tmp_path, "main.yaml", REPLIES.replace(": confirmed\n", ": confirmd\n", 1))
    [problem] = check_flows(tmp_path)
    assert (problem.line, problem.reason) == (4, "there is no state 'confirmd'")
    assert problem.hint == "did you mean 'confirmed'?"
