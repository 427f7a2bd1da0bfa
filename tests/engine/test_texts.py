"""The bot's own words in templates/texts/, and the one rule that picks a language's version of any text."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.engine import Conversation, Customer, Engine, Event, FlowLoadError, check_flows, load_flows
from bot.engine.texts import TEXTS, TextCatalog, load_texts, pick_language, pick_text
from bot.orders.texts import order_texts, order_texts_file
from bot.settings import OrderSettings
from bot.whatsapp.outbound import Text
from tests.helpers import TEMPLATES, write_flow

FLOW = "flow: main\nstart: menu\nstates:\n  menu:\n    say: Hi\n    on: {keywords: {menu: [menu]}}\n"


def test_the_customers_language_then_its_base_the_shops_default_english_then_the_first() -> None:
    written = {"zh": "zh", "en": "en", "es": "es", "es_MX": "es_MX", "pt": "pt"}
    assert pick_text(written, "es_MX", "pt") == "es_MX"
    assert pick_text(written, "es-AR", "pt") == "es"
    assert pick_text(written, "fr", "pt") == "pt"
    assert pick_text(written, "fr", "de") == "en"
    assert pick_text({"zh": "zh", "es": "es"}, "fr", "de") == "zh"
    assert pick_text(written, None, "es") == "es"
    assert pick_text("one text for everyone", "es") == "one text for everyone"
    assert pick_text(None, "es") == ""
    assert pick_language((), "es", "en") is None


def test_the_shipped_texts_load_complete() -> None:
    catalog, problems = load_texts(TEMPLATES)
    assert problems == []
    assert set(catalog.texts) == {f"{file}.{name}" for file, names in TEXTS.items() for name in names}
    for key in catalog.texts:
        assert {"en", "es", "zh"} <= set(catalog.texts[key]), key
    assert catalog.say("engine.ask_number_range", "es", "en", min=1, max=5) == (
        "Responde con un número del 1 al 5."
    )
    assert (
        catalog.say("handoff.wait", "zh_CN", "en", minutes=5) == "谢谢！技术员大约 5 分钟内会在这里回复您。"
    )
    with pytest.raises(KeyError, match="not one of the bot's texts"):
        catalog.say("engine.not_understod", "en")


def shop_templates(tmp_path: Path) -> Path:
    """A copy of the shipped templates/ the test can edit, like a shop does."""
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    return templates


async def test_an_edited_text_is_what_the_customer_reads(tmp_path: Path) -> None:
    templates = shop_templates(tmp_path)
    engine_texts = templates / "texts" / "engine.yaml"
    engine_texts.write_text(
        engine_texts.read_text(encoding="utf-8").replace(
            "Perdona, no lo he entendido.", "Uy, no te he entendido. Escribe menu."
        ),
        encoding="utf-8",
    )
    write_flow(tmp_path / "flows", "main.yaml", FLOW)
    engine = Engine(load_flows(tmp_path / "flows", templates=templates))
    outcome = await engine.handle(
        Conversation("main", "menu", {}), Customer("1", None, "es_MX"), Event.of_text("qwerty")
    )
    assert outcome.outbound == [Text(body="Uy, no te he entendido. Escribe menu.")]


def test_a_broken_texts_file_is_refused_with_its_place(tmp_path: Path) -> None:
    templates = shop_templates(tmp_path)
    engine_texts = templates / "texts" / "engine.yaml"
    lines = engine_texts.read_text(encoding="utf-8").splitlines()
    at = {line: n for n, line in enumerate(lines, start=1)}
    edited = [
        line.replace("not_understood:", "not_understod:")
        .replace("{max}", "{maximum}")
        .replace('  es: "Envía una hora', '  spanish: "Envía una hora')
        for line in lines
    ]
    engine_texts.write_text("\n".join(edited) + "\n", encoding="utf-8")
    (templates / "texts" / "appointments.yaml").unlink()
    write_flow(tmp_path / "flows", "main.yaml", FLOW)
    problems = check_flows(tmp_path / "flows", templates=templates)
    found = [(Path(p.file).name, p.line, p.reason, p.hint) for p in problems]
    range_en = at['  en: "Please answer with a number from {min} to {max}."']
    assert found == [
        (
            "appointments.yaml",
            1,
            "this file is missing: the bot's own texts are read from it",
            "copy it from the bot's templates/texts/",
        ),
        (
            "engine.yaml",
            at["restart:"],  # the file's first line of data
            "'not_understood' is missing here",
            "add 'not_understood:' with one text per language",
        ),
        (
            "engine.yaml",
            at["not_understood:"],
            "unknown text 'not_understod'",
            "did you mean 'not_understood'?",
        ),
        ("engine.yaml", range_en, "this text cannot use {maximum}", "it may use {min}, {max}"),
        ("engine.yaml", range_en + 1, "this text cannot use {maximum}", "it may use {min}, {max}"),
        ("engine.yaml", range_en + 2, "this text cannot use {maximum}", "it may use {min}, {max}"),
        (
            "engine.yaml",
            at['  es: "Envía una hora, por ejemplo 14:30."'],
            "'spanish' is not a language code",
            "use codes like en, es, zh",
        ),
    ]
    with pytest.raises(FlowLoadError, match=r"engine\.yaml:\d+:\d+: unknown text 'not_understod'"):
        load_flows(tmp_path / "flows", templates=templates)


def test_flows_loaded_without_templates_have_no_texts(tmp_path: Path) -> None:
    (tmp_path / "main.yaml").write_text(FLOW, encoding="utf-8")
    assert load_flows(tmp_path).texts == TextCatalog()
    assert TextCatalog().say("engine.not_understood", "en") == ""


def test_order_status_texts_follow_the_same_rule(tmp_path: Path) -> None:
    statuses = [status.name for status in OrderSettings().statuses]  # the shipped file's
    catalog, problems = load_texts(TEMPLATES, [order_texts_file(statuses, "en")])
    texts = order_texts(catalog)
    assert texts is not None and problems == []
    assert texts.label("received", "es_MX") == "Recibida"  # its base language, not the shop's default
    assert texts.label("received", "fr") == "Received"
