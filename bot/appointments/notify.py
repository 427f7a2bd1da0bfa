"""What a customer is told when staff move or cancel their appointment over the API.

Like an order's status notification (the shared rule in bot/notices.py): inside the 24-hour window the
change's text from templates/texts/appointment_changes.yaml, in the customer's language; outside it the
approved `appointment_update` template with the device and the change's label. Changes the customer makes
in the chat are answered by the flow itself, and staff may pass `"notify": false` to say nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, ConfigDict

from bot.appointments.dates import when_label
from bot.db.models import Appointment, Customer
from bot.engine.content import Content, ContentSource
from bot.engine.marked_yaml import MarkedSource
from bot.engine.texts import TextCatalog, TextsFile, pick_text
from bot.notice_texts import NOT_EMPTY, Language, Text, format_text, placeholders, read_model, template_safe
from bot.notices import PerLanguage, WindowRule
from bot.settings import Settings
from bot.whatsapp.outbound import OutboundMessage, Template

UPDATE_TEMPLATE = "appointment_update"
TEXTS_NAME = "appointment_changes"
"""templates/texts/appointment_changes.yaml"""
PLACEHOLDERS = ("when", "device", "customer_name", "address")

Change = Literal["moved", "cancelled"]

Label = Annotated[Text, AfterValidator(template_safe), AfterValidator(placeholders(PLACEHOLDERS))]
ChangeText = Annotated[Text, AfterValidator(placeholders(PLACEHOLDERS))]


class ChangeTexts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    label: Annotated[dict[Language, Label], NOT_EMPTY]
    """The change in a few words; the appointment_update template's second parameter."""
    text: Annotated[dict[Language, ChangeText], NOT_EMPTY]
    """The message sent inside the 24-hour window."""


class AppointmentTextsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    moved: ChangeTexts
    cancelled: ChangeTexts


def _read(source: MarkedSource, document: Any) -> AppointmentTextsFile | None:
    return read_model(source, document, AppointmentTextsFile)


CHANGE_TEXTS_FILE: TextsFile[AppointmentTextsFile] = TextsFile(TEXTS_NAME, _read)
"""The file as the loader reads it; missing, every notice is the appointment_update template."""


def device_text(device_model: str | None, texts: TextCatalog, language: str, default: str) -> str:
    """The device, else "your device" (templates/texts/appointments.yaml): a template parameter may
    not be empty. The reminders' {{3}} and the notices' {device}."""
    return device_model or texts.say("appointments.your_device", language, default) or "-"


@dataclass(frozen=True)
class AppointmentNotifier:
    content: ContentSource
    """The change texts, the bot's own texts (its "your device") and the template's languages: the
    content served now."""
    default_language: str
    zone: ZoneInfo
    address: PerLanguage = ""

    def rule(self, content: Content) -> WindowRule:
        template = content.templates.get(UPDATE_TEMPLATE)
        return WindowRule(self.default_language, tuple(template.languages) if template else ())

    def message_for(
        self, appointment: Appointment, change: Change, customer: Customer | None, now: datetime
    ) -> OutboundMessage:
        content = self.content()
        changes = content.texts.file(TEXTS_NAME, AppointmentTextsFile)
        texts = getattr(changes, change) if changes else None

        def text(language: str) -> str | None:
            return self._fill(content, texts.text, language, appointment) if texts else None

        def template(language: str) -> Template:
            label = self._fill(content, texts.label, language, appointment) if texts else change
            device = self._device(content, appointment, language)
            return Template(name=UPDATE_TEMPLATE, language=language, body_params=(device, label))

        return self.rule(content).message(customer, now, text, template)

    def _fill(
        self, content: Content, by_language: dict[str, str], language: str, appointment: Appointment
    ) -> str:
        default = self.default_language
        values = {
            "when": when_label(appointment.starts_at.astimezone(self.zone), language),
            "device": self._device(content, appointment, language),
            "customer_name": appointment.customer_name or "",
            "address": pick_text(self.address, language, default),
        }
        return format_text(pick_text(by_language, language, default), PLACEHOLDERS, values)

    def _device(self, content: Content, appointment: Appointment, language: str) -> str:
        return device_text(appointment.device_model, content.texts, language, self.default_language)


def build_appointment_notifier(settings: Settings, content: ContentSource) -> AppointmentNotifier:
    """`content`: the served one, with appointment_changes.yaml read by CHANGE_TEXTS_FILE."""
    return AppointmentNotifier(
        content=content,
        default_language=settings.shop.default_language,
        zone=ZoneInfo(settings.shop.timezone),
        address=settings.shop.address,
    )
