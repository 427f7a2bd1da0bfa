"""The built-in 'language' command: any customer, in any state, can switch the bot's language.

Typing "language" (or "idioma", "语言") shows the shop's languages as buttons (a list beyond three);
tapping one, or typing a language's name ("español"), switches. The choice is remembered on the
customer, and the question the conversation was waiting on is asked again in the new language.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.engine.events import Event
from bot.engine.words import normalize
from bot.whatsapp import outbound as wa

LANGUAGE_REPLY_PREFIX = "_lang:"
COMMAND_WORDS = frozenset(
    normalize(word)
    for word in ("language", "languages", "lang", "idioma", "idiomas", "lengua", "语言", "語言", "语种")
)
# name shown on the button, then the words that name the language when typed
LANGUAGES: dict[str, tuple[str, ...]] = {
    "en": ("English", "english", "ingles", "英语", "英文"),
    "es": ("Español", "espanol", "spanish", "castellano", "西班牙语"),
    "zh": ("中文", "chinese", "chino", "简体中文", "汉语", "普通话", "mandarin"),
    "pt": ("Português", "portugues", "portuguese"),
    "fr": ("Français", "francais", "french", "frances"),
}
PROMPTS: dict[str, str] = {
    "en": "Choose your language",
    "es": "Elige tu idioma",
    "zh": "请选择语言",
    "pt": "Escolha o seu idioma",
    "fr": "Choisissez votre langue",
}
CONFIRMATIONS: dict[str, str] = {
    "en": "OK, I'll write in English from now on.",
    "es": "Perfecto, a partir de ahora te escribo en español.",
    "zh": "好的，接下来我会用中文与您交流。",
    "pt": "Combinado, a partir de agora escrevo em português.",
    "fr": "D'accord, je vous écris en français désormais.",
}


def pick_text(text: str | dict[str, str], language: str | None, default: str = "en") -> str:
    """One text per language (from a flow or settings): the customer's, its base language, the
    default, else the first written."""
    if isinstance(text, str):
        return text
    language = language or default
    base = language.split("_")[0].split("-")[0].lower()
    for code in (language, base, default):
        if code in text:
            return text[code]
    return next(iter(text.values()), "")


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

    def message(self) -> wa.OutboundMessage:
        body = " / ".join(dict.fromkeys(PROMPTS.get(code, PROMPTS["en"]) for code in self.languages))
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

    def confirmation(self, code: str) -> str:
        return CONFIRMATIONS.get(code, CONFIRMATIONS["en"])
