"""The built-in 'language' command: any customer, in any state, can switch the bot's language.

Typing "language" (or "idioma", "语言") shows the shop's languages as buttons (a list beyond three);
tapping one, or typing a language's name ("español"), switches. The choice is remembered on the
customer, and the question the conversation was waiting on is asked again in the new language.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.engine.events import Event
from bot.engine.texts import TextCatalog
from bot.engine.words import normalize
from bot.whatsapp import outbound as wa

LANGUAGE_REPLY_PREFIX = "_lang:"
COMMAND_WORDS = frozenset(
    normalize(word)
    for word in ("language", "languages", "lang", "idioma", "idiomas", "lengua", "语言", "語言", "语种")
)
# name shown on the button, then the words that name the language when typed (the prompt and the
# confirmation are texts: templates/texts/engine.yaml)
LANGUAGES: dict[str, tuple[str, ...]] = {
    "en": ("English", "english", "ingles", "英语", "英文"),
    "es": ("Español", "espanol", "spanish", "castellano", "西班牙语"),
    "zh": ("中文", "chinese", "chino", "简体中文", "汉语", "普通话", "mandarin"),
    "pt": ("Português", "portugues", "portuguese"),
    "fr": ("Français", "francais", "french", "frances"),
}


class LanguageMenu:
    """The shop's languages (settings: shop.languages), as a menu and as words a customer may type."""

    def __init__(self, languages: Sequence[str]) -> None:
        self.languages = tuple(dict.fromkeys(languages))
        self._typed: dict[str, str] = {}
        for code in self.languages:
            for word in (code, *LANGUAGES.get(code, ())):
                self._typed.setdefault(normalize(word), code)
        self._typed.pop("en", None)  # "en" is a Spanish word ("en casa"); a typed code is too short

    def asked(self, event: Event) -> bool:
        """The customer typed the command word, on its own."""
        return event.type == "text" and normalize(event.text or "").strip(".!?¿¡") in COMMAND_WORDS

    def chosen(self, event: Event) -> str | None:
        """The language tapped in the menu, or typed by name on its own ("español"); else None."""
        if event.reply_id is not None:
            code = event.reply_id.removeprefix(LANGUAGE_REPLY_PREFIX)
            return (
                code if event.reply_id.startswith(LANGUAGE_REPLY_PREFIX) and code in self.languages else None
            )
        if event.type != "text" or len(self.languages) < 2:
            return None
        return self._typed.get(normalize(event.text or "").strip(".!?¿¡"))

    def message(self, texts: TextCatalog, default: str) -> wa.OutboundMessage:
        """The prompt in each of the shop's languages, then one button (or list row) per language."""
        prompts = (texts.say("engine.language_prompt", code, default) for code in self.languages)
        body = " / ".join(dict.fromkeys(prompt for prompt in prompts if prompt)) or "🌐"
        titles = [(code, LANGUAGES.get(code, (code,))[0]) for code in self.languages]
        if len(titles) <= wa.MAX_BUTTONS:
            buttons = tuple(
                wa.ReplyButton(id=LANGUAGE_REPLY_PREFIX + code, title=title[: wa.BUTTON_TITLE_MAX])
                for code, title in titles
            )
            return wa.Buttons(body=body[: wa.BUTTON_BODY_MAX], buttons=buttons)
        rows = tuple(
            wa.ListRow(id=LANGUAGE_REPLY_PREFIX + code, title=title[: wa.LIST_ROW_TITLE_MAX])
            for code, title in titles[: wa.LIST_MAX_ROWS]
        )
        return wa.ListMessage(
            body=body[: wa.LIST_BODY_MAX], button="🌐", sections=(wa.ListSection(title=None, rows=rows),)
        )

    def confirmation(self, code: str, texts: TextCatalog, default: str) -> str:
        return texts.say("engine.language_chosen", code, default)
