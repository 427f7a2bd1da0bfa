"""What a customer is told when staff move or cancel their appointment over the API.

Like an order's status notification (the shared rule in bot/notices.py): inside the 24-hour window the
change's text from templates/texts/appointment_changes.yaml, in the customer's language; outside it the
approved `appointment_update` template with the device and the change's label. Changes the customer makes
in the chat are answered by the flow itself, and staff may pass `"notify": false` to say nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, ConfigDict

from bot.appointments.dates import when_label
from bot.db.models import Appointment, Customer
from bot.engine.templates import load_templates
from bot.engine.texts import TextCatalog, TextSource, pick_text, read_once
from bot.notice_texts import (
    TEXTS_DIR,
    Texts,
    TextsError,
    format_text,
    placeholders,
    read_texts,
    template_safe,
)
from bot.notices import PerLanguage, WindowRule
from bot.settings import Settings
from bot.whatsapp.outbound import OutboundMessage, Template

UPDATE_TEMPLATE = "appointment_update"
TEXTS_FILE = TEXTS_DIR / "appointment_changes.yaml"
PLACEHOLDERS = ("when", "device", "customer_name", "address")

Change = Literal["moved", "cancelled"]


class ChangeTexts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    label: Annotated[Texts, AfterValidator(template_safe), AfterValidator(placeholders(PLACEHOLDERS))]
    """The change in a few words; the appointment_update template's second parameter."""
    text: Annotated[Texts, AfterValidator(placeholders(PLACEHOLDERS))]
    """The message sent inside the 24-hour window."""


class AppointmentTextsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    moved: ChangeTexts
    cancelled: ChangeTexts


def device_text(device_model: str | None, texts: TextCatalog, language: str, default: str) -> str:
    """The device, else "your device" (templates/texts/appointments.yaml): a template parameter may
    not be empty. The reminders' {{3}} and the notices' {device}."""
    return device_model or texts.say("appointments.your_device", language, default) or "-"


@dataclass(frozen=True)
class AppointmentNotifier:
    texts: AppointmentTextsFile | None
    """None: no texts file; every notification is the template."""
    rule: WindowRule
    zone: ZoneInfo
    phrases: TextSource
    """The bot's own texts (its "your device"): the engine's current ones in the server."""
    address: PerLanguage = ""

    def message_for(
        self, appointment: Appointment, change: Change, customer: Customer | None, now: datetime
    ) -> OutboundMessage:
        texts = getattr(self.texts, change) if self.texts else None

        def text(language: str) -> str | None:
            return self._fill(texts.text, language, appointment) if texts else None

        def template(language: str) -> Template:
            label = self._fill(texts.label, language, appointment) if texts else change
            device = self._device(appointment, language)
            return Template(name=UPDATE_TEMPLATE, language=language, body_params=(device, label))

        return self.rule.message(customer, now, text, template)

    def _fill(self, by_language: dict[str, str], language: str, appointment: Appointment) -> str:
        default = self.rule.default_language
        values = {
            "when": when_label(appointment.starts_at.astimezone(self.zone), language),
            "device": self._device(appointment, language),
            "customer_name": appointment.customer_name or "",
            "address": pick_text(self.address, language, default),
        }
        return format_text(pick_text(by_language, language, default), PLACEHOLDERS, values)

    def _device(self, appointment: Appointment, language: str) -> str:
        return device_text(appointment.device_model, self.phrases(), language, self.rule.default_language)


class AppointmentTextsError(TextsError):
    """templates/texts/appointment_changes.yaml cannot be used (file, key path, reason)."""


def load_appointment_texts(templates_dir: Path) -> AppointmentTextsFile | None:
    """The texts, or None when the file is missing (then only the template is sent)."""
    path = templates_dir / TEXTS_FILE
    if not path.exists():
        return None
    try:
        return read_texts(path, AppointmentTextsFile, "appointment change texts")
    except TextsError as exc:
        raise AppointmentTextsError(str(exc)) from None


def build_appointment_notifier(settings: Settings, phrases: TextSource | None = None) -> AppointmentNotifier:
    """Reads the texts file (AppointmentTextsError when it is invalid) and the template's languages;
    `phrases`: the engine's texts (the server's), else templates/texts/ read once."""
    catalog, _ = load_templates(settings.templates_dir)  # template problems are reported with the flows'
    template = catalog.get(UPDATE_TEMPLATE)
    return AppointmentNotifier(
        texts=load_appointment_texts(settings.templates_dir),
        rule=WindowRule(settings.shop.default_language, tuple(template.languages) if template else ()),
        zone=ZoneInfo(settings.shop.timezone),
        phrases=phrases if phrases is not None else read_once(settings.templates_dir),
        address=settings.shop.address,
    )
