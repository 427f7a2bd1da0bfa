"""STOP and START: the words a customer opts out of (and back into) the messages the shop starts with.

The words live in templates/texts/consent.yaml, per language, so a language added there works the same.
A message is a keyword only when it is nothing but one of the words (any case, spaces and punctuation
around it ignored): "stop" is one, "don't stop my repair" is not. A word of any language counts, whatever
language the customer reads; they are answered in theirs, or else in the word's.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from bot.engine.texts import TextCatalog

Keyword = Literal["stop", "start"]
_KEYS: tuple[tuple[Keyword, str], ...] = (("stop", "consent.stop_words"), ("start", "consent.start_words"))
_TRIM = " \t\r\n.!¡?¿。！？,，;:\"'“”«»()"


@dataclass(frozen=True)
class Found:
    keyword: Keyword
    language: str
    """The language whose word it was."""


def _normal(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).strip(_TRIM).casefold().split())


def keyword_of(text: str | None, texts: TextCatalog) -> Found | None:
    """The opt-out keyword `text` is, if it is one."""
    if not text or len(text) > 64:
        return None
    said = _normal(text)
    for keyword, key in _KEYS:
        for language, words in texts.texts.get(key, {}).items():
            if said in _words(words):
                return Found(keyword, language)
    return None


@lru_cache(maxsize=256)
def _words(listed: str) -> frozenset[str]:
    """A language's comma-separated words, normalised: once per list, not for every text message."""
    return frozenset(_normal(word) for word in listed.split(",") if word.strip())
