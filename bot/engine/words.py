"""How the engine reads what is written: text folded for comparison, keyword regexes, reply-id patterns.

Keywords, typed answers, choices and language names all compare through `normalize`, so 'TÉCNICO '
typed by a customer meets 'técnico' written in a flow.
"""

from __future__ import annotations

import re
import unicodedata

_UNSPACED = re.compile(r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_SPACES = re.compile(r"\s+")
REPLY_PLACEHOLDER = re.compile(r"\{([A-Za-z][A-Za-z0-9_]*)\}")
"""A variable part of a reply id pattern: `appt:confirm:{appointment}`."""


def normalize(text: str) -> str:
    """Case- and accent-insensitive form: 'TÉCNICO ' -> 'tecnico'. Keywords and messages both pass here."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _SPACES.sub(" ", stripped.casefold()).strip()


def keyword_regex(words: list[str]) -> re.Pattern[str]:
    """One regex for a target's keywords: whole words, or anywhere for scripts written without spaces."""
    parts = []
    for word in words:
        escaped = re.escape(normalize(word))
        parts.append(escaped if _UNSPACED.search(word) else rf"(?<!\w){escaped}(?!\w)")
    return re.compile("|".join(parts))


def reply_regex(key: str) -> re.Pattern[str]:
    """'appt:confirm:{appointment}' -> a regex whose named groups become conversation variables."""
    parts, last = [], 0
    for found in REPLY_PLACEHOLDER.finditer(key):
        parts.append(re.escape(key[last : found.start()]))
        parts.append(f"(?P<{found.group(1)}>[^:\\s]+)")
        last = found.end()
    parts.append(re.escape(key[last:]))
    return re.compile("".join(parts))
