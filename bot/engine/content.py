"""What staff keep in templates/: the approved templates and the texts, read once per (re)load.

The flows are checked against this content when they load (bot/engine/flows.py), the flow set that
serves carries it, and every part that sends the shop's words (the order and appointment notices, the
reminders, the handoff desk and its guards) reads the served one through a `ContentSource`: none reads
templates/ on its own, so a saved edit reaches all of them at once, and a bad one reaches none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from bot.engine.marked_yaml import FlowProblem
from bot.engine.templates import TemplateCatalog, load_templates
from bot.engine.texts import TextCatalog, TextsFile, load_texts


@dataclass(frozen=True)
class Content:
    templates: TemplateCatalog = field(default_factory=lambda: TemplateCatalog(MappingProxyType({})))
    texts: TextCatalog = field(default_factory=TextCatalog)
    problems: tuple[FlowProblem, ...] = ()
    """What is wrong in the files, with file:line; content with problems is never served."""


ContentSource = Callable[[], Content]
"""Where a part beside the engine gets the content: the one served now (bot/pipeline.py)."""


def load_content(directory: Path, texts_files: Sequence[TextsFile[Any]] = ()) -> Content:
    """templates/*.yaml and templates/texts/ (the bot's own texts and `texts_files`), with every problem."""
    catalog, template_problems = load_templates(directory)
    texts, text_problems = load_texts(directory, texts_files)
    return Content(catalog, texts, tuple(template_problems + text_problems))


def served(content: Content) -> ContentSource:
    """A source that always gives `content` (a command that runs without the engine, a test)."""
    return lambda: content
