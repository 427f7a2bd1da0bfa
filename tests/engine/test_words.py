"""How the engine reads words: `normalize` and `keyword_regex` keep their meaning on their fast paths.

Both run several times per message, so each has a shortcut (ASCII text is only folded; the whole words
of a keyword list share one boundary check). These tests hold the shortcuts to the plain definitions:
the per-character decomposition, and one `(?<!\\w)word(?!\\w)` per word.
"""

from __future__ import annotations

import re
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from bot.engine.words import _UNSPACED, keyword_regex, normalize


def plain_normalize(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"\s+", " ", stripped.casefold()).strip()


def plain_keywords(words: list[str]) -> re.Pattern[str]:
    parts = []
    for word in words:
        escaped = re.escape(plain_normalize(word))
        parts.append(escaped if _UNSPACED.search(word) else rf"(?<!\w){escaped}(?!\w)")
    return re.compile("|".join(parts))


# letters that fold (accents, capitals), word characters, spaces, punctuation and CJK
ALPHABET = "abcAB éÉñÑü1_-.!?\t\n预约你好ไทย"
texts = st.text(alphabet=ALPHABET, max_size=40)
words = st.lists(
    st.text(alphabet=ALPHABET, min_size=1, max_size=8).filter(lambda w: plain_normalize(w) != ""),
    min_size=1,
    max_size=6,
)


@given(st.one_of(st.text(max_size=60), st.text(alphabet=st.characters(max_codepoint=127), max_size=60)))
def test_normalize_is_the_decomposition_for_any_text_ascii_or_not(text: str) -> None:
    assert normalize(text) == plain_normalize(text)


@given(words, texts)
def test_keywords_match_where_one_check_per_word_would(keywords: list[str], text: str) -> None:
    folded = normalize(text)
    assert bool(keyword_regex(keywords).search(folded)) == bool(plain_keywords(keywords).search(folded))
    assert bool(keyword_regex(keywords).fullmatch(folded)) == bool(plain_keywords(keywords).fullmatch(folded))


def test_keywords_are_whole_words_and_ignore_case_and_accents() -> None:
    technician = keyword_regex(["human", "técnico", "人工"])
    assert technician.search(normalize("Quiero un TECNICO por favor"))
    assert technician.search(normalize("a Human please"))
    assert technician.search(normalize("我要人工服务"))  # a script without spaces: anywhere
    assert not technician.search(normalize("humanity"))
    assert not technician.search(normalize("inhuman"))


def test_a_list_of_words_is_compiled_once() -> None:
    assert keyword_regex(["hola", "hello"]) is keyword_regex(("hola", "hello"))
