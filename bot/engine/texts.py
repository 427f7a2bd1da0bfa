"""The bot's own words, and the one rule for which language's version of a text a customer gets.

Flows hold most of what customers read; what the code itself says (the engine's "Sorry, I didn't
understand that.", the hint when an answer does not fit, the apology when something fails, the handoff's
wait) is in templates/texts/<file>.yaml, edited by staff like the flows, read with them and reloaded
with them. `TEXTS` lists every such text and the {placeholders} it may use; a file that misses one,
misspells one or uses another placeholder is refused with its file:line, like a flow. The other files
there (an order's status texts, an appointment change's) belong to the parts that send them: each gives
a `TextsFile` that reads its own shape, and they are read, checked and reloaded in the same pass.

Every per-language text, from a flow, the settings or these files, is picked by `pick_language`: the
customer's language, its base language (es_MX → es), the shop's default language, English, and last the
first one written.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from bot.engine.marked_yaml import FlowProblem, MarkedSource, YamlPath
from bot.engine.schema import LANGUAGE

TEXTS_DIR = "texts"
"""The folder inside templates/ that holds these files (and orders' order_statuses.yaml)."""
FALLBACK_LANGUAGE = "en"

TEXTS: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "engine": {
        "restart": (),
        "not_understood": (),
        "ask_text": (),
        "ask_number": (),
        "ask_number_range": ("min", "max"),
        "ask_date": ("example",),
        "ask_time": (),
        "ask_choice": ("choices",),
        "language_prompt": (),
        "language_chosen": (),
        "apology": (),
        "flood": (),
    },
    "handoff": {
        "wait": ("minutes",),
        "closed": ("day", "time"),
        "unclaimed": (),
    },
    "appointments": {
        "your_device": (),
    },
    "consent": {
        "stop_words": (),
        "start_words": (),
        "opted_out": (),
        "opted_in": (),
    },
}
"""File (templates/texts/<file>.yaml) -> its texts -> the placeholders each may use."""
KNOWN = frozenset(f"{file}.{name}" for file, names in TEXTS.items() for name in names)

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def base_language(language: str) -> str:
    """'es_MX' -> 'es', 'zh-Hant' -> 'zh'."""
    return re.split(r"[-_]", language.strip(), maxsplit=1)[0].lower()


@lru_cache(maxsize=1024)
def language_order(language: str | None, default: str | None = None) -> tuple[str, ...]:
    """The languages to try, best first: the customer's, its base language, the shop's default, English.
    Cached: asked for every text of every reply, and customers speak few languages."""
    language = (language or "").strip()
    candidates = (language, base_language(language), default, FALLBACK_LANGUAGE)
    return tuple(dict.fromkeys(code for code in candidates if code))


def pick_language(available: Iterable[str], language: str | None, default: str | None = None) -> str | None:
    """Which of `available` (in the order written) a customer gets; None when there is none."""
    written = list(available)
    for code in language_order(language, default):
        if code in written:
            return code
    return written[0] if written else None


def pick_text(text: str | Mapping[str, str] | None, language: str | None, default: str | None = None) -> str:
    """One text, or one text per language: the version `pick_language` chooses ("" for none)."""
    if text is None or isinstance(text, str):
        return text or ""
    code = pick_language(text, language, default)
    return text[code] if code is not None else ""


T = TypeVar("T")


@dataclass(frozen=True)
class TextsFile(Generic[T]):
    """Another file of templates/texts/, read with the bot's own texts: `read` turns its YAML into the
    value its part uses (`T`), adding every problem to the source with its file:line; None when the
    file cannot be used. A missing file is allowed unless `required` (its part then does without)."""

    name: str
    """The file's name without .yaml: templates/texts/<name>.yaml."""
    read: Callable[[MarkedSource, Any], T | None]
    required: bool = False


@dataclass(frozen=True)
class TextCatalog:
    """The loaded texts: 'engine.not_understood' -> language -> text, and the other files' values."""

    texts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    files: Mapping[str, object] = field(default_factory=dict)
    """TextsFile.name -> what its `read` made of it (files that are missing are not here)."""

    def say(self, key: str, language: str | None, default: str | None = None, **values: Any) -> str:
        """The text in the customer's language with its {placeholders} filled; "" when the catalog was
        loaded without templates/ (flows loaded on their own, in tests)."""
        if key not in KNOWN:
            raise KeyError(f"'{key}' is not one of the bot's texts (see TEXTS)")
        text = pick_text(self.texts.get(key), language, default)
        return _PLACEHOLDER.sub(lambda found: str(values.get(found.group(1), found.group(0))), text)

    def file(self, name: str, kind: type[T]) -> T | None:
        """What TextsFile `name` read, or None (the file is missing, or was not asked for)."""
        value = self.files.get(name)
        return value if isinstance(value, kind) else None


def load_texts(
    templates: Path, files: Sequence[TextsFile[Any]] = ()
) -> tuple[TextCatalog, list[FlowProblem]]:
    """templates/texts/<file>.yaml for every file in TEXTS and `files`; every problem in them, with
    file:line."""
    texts: dict[str, Mapping[str, str]] = {}
    read: dict[str, object] = {}
    problems: list[FlowProblem] = []
    for file, specs in TEXTS.items():
        source, document = _parsed(templates / TEXTS_DIR / f"{file}.yaml", required=True)
        if document is not None:
            for name, by_language in _file_texts(source, document, specs).items():
                texts[f"{file}.{name}"] = MappingProxyType(by_language)
        problems.extend(source.problems)
    for spec in files:
        source, document = _parsed(templates / TEXTS_DIR / f"{spec.name}.yaml", required=spec.required)
        if document is not None:
            value = spec.read(source, document)
            if value is not None and not source.problems:
                read[spec.name] = value
        problems.extend(source.problems)
    problems.sort(key=lambda p: (p.file, p.line, p.column))
    return TextCatalog(MappingProxyType(texts), MappingProxyType(read)), problems


def _parsed(path: Path, *, required: bool) -> tuple[MarkedSource, Any]:
    """The file's YAML with its marks; None (and the problem noted) when it cannot be read."""
    source = MarkedSource(str(path))
    try:
        return source, source.parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if required:
            reason = "this file is missing: the bot's own texts are read from it"
            source.problems.append(
                FlowProblem(str(path), 1, 1, reason, "copy it from the bot's templates/texts/")
            )
    except (OSError, UnicodeDecodeError) as exc:
        source.problems.append(FlowProblem(str(path), 1, 1, f"cannot read this file: {exc}"))
    return source, None


def _file_texts(
    source: MarkedSource, document: Any, specs: Mapping[str, tuple[str, ...]]
) -> dict[str, dict[str, str]]:
    if not isinstance(document, dict):
        source.add((), "expected 'name:' lines, each with one text per language", "see the file's comments")
        return {}
    found: dict[str, dict[str, str]] = {}
    for name, value in document.items():
        if name not in specs:
            close = difflib.get_close_matches(name, list(specs), 1)
            hint = f"did you mean '{close[0]}'?" if close else f"the texts here are: {', '.join(specs)}"
            source.add((name,), f"unknown text '{name}'", hint, key=True)
            continue
        by_language = _by_language(source, (name,), value, specs[name])
        if by_language:
            found[name] = by_language
    for name in specs:
        if name not in document:
            source.add((), f"'{name}' is missing here", f"add '{name}:' with one text per language")
    return found


def _by_language(
    source: MarkedSource, path: YamlPath, value: Any, placeholders: tuple[str, ...]
) -> dict[str, str]:
    if not isinstance(value, dict) or not value:
        source.add(path, "expected one text per language", 'write {en: "Hello", es: "Hola"}', key=True)
        return {}
    texts: dict[str, str] = {}
    for language, text in value.items():
        where = (*path, language)
        if not LANGUAGE.match(language):
            source.add(where, f"'{language}' is not a language code", "use codes like en, es, zh", key=True)
        elif not isinstance(text, str) or not text.strip():
            source.add(
                where, f"the '{language}' text must be a non-empty text", 'put it in quotes: "like this"'
            )
        elif (problem := _placeholder_problem(text, placeholders)) is not None:
            source.add(where, problem[0], problem[1])
        else:
            texts[language] = text
    return texts


def _placeholder_problem(text: str, placeholders: tuple[str, ...]) -> tuple[str, str] | None:
    allowed = ", ".join(f"{{{name}}}" for name in placeholders)
    hint = f"it may use {allowed}" if allowed else "this text takes no {placeholders}"
    for found in _PLACEHOLDER.finditer(text):
        if found.group(1) not in placeholders:
            return f"this text cannot use {found.group(0)}", hint
    if "{" in _PLACEHOLDER.sub("", text) or "}" in _PLACEHOLDER.sub("", text):
        return "a { or } without its pair", f"braces are only for placeholders; {hint}"
    return None
