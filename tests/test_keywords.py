"""The opt-out words (templates/texts/consent.yaml): STOP/unsubscribe, BAJA, 退订 and back in with START,
ALTA, 订阅, in any case and whatever language the customer reads; only a message that is just the word."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.engine.texts import load_texts
from bot.privacy.keywords import Found, keyword_of
from tests.helpers import REPO

TEXTS, PROBLEMS = load_texts(REPO / "templates")


def test_the_shipped_texts_load() -> None:
    assert PROBLEMS == []


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("STOP", Found("stop", "en")),
        ("stop", Found("stop", "en")),
        ("  Stop! ", Found("stop", "en")),
        ("unsubscribe", Found("stop", "en")),
        ("BAJA", Found("stop", "es")),
        ("baja.", Found("stop", "es")),
        ("退订", Found("stop", "zh")),
        ("退订！", Found("stop", "zh")),
        ("START", Found("start", "en")),
        ("ALTA", Found("start", "es")),
        ("订阅", Found("start", "zh")),
        ("don't stop my repair", None),
        ("stopped", None),
        ("hi", None),
        ("", None),
        (None, None),
        ("stop " * 30, None),
    ],
)
def test_a_keyword_is_the_whole_message(text: str | None, found: Found | None) -> None:
    assert keyword_of(text, TEXTS) == found


def test_a_language_added_to_the_file_works_the_same(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    (templates / "texts").mkdir(parents=True)
    for path in (REPO / "templates" / "texts").glob("*.yaml"):
        (templates / "texts" / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    consent = templates / "texts" / "consent.yaml"
    text = consent.read_text(encoding="utf-8")
    text = text.replace('  zh: "退订, 取消订阅"\n', '  zh: "退订, 取消订阅"\n  fr: "ARRET, désabonner"\n')
    text = text.replace('  zh: "订阅, 重新订阅"\n', '  zh: "订阅, 重新订阅"\n  fr: "DEMARRER"\n')
    consent.write_text(text, encoding="utf-8")
    texts, problems = load_texts(templates)
    assert problems == []
    assert keyword_of("arret", texts) == Found("stop", "fr")
    assert keyword_of("Désabonner", texts) == Found("stop", "fr")
    assert keyword_of("DEMARRER", texts) == Found("start", "fr")
