"""The shop's settings: settings.yaml (no secrets) plus the environment (secrets and overrides).

One `Settings` object is built at start-up by `load_settings()` and handed to whatever needs it; nothing
reads the environment anywhere else. An invalid file stops start-up with the key path and the reason.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from datetime import date, time, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

from bot.costs.settings import CostSettings, LimitSettings, MessagingLimit
from bot.whatsapp.profile import About, Description, Email, Vertical, Websites

DEFAULT_SETTINGS_FILE = "settings.yaml"
DEFAULT_GRAPH_BASE_URL = "https://graph.facebook.com/v25.0"
SANDBOX_APP_SECRET = "sandbox-secret"


class SettingsError(Exception):
    """The settings cannot be used; the message names the file, the key path and the reason."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ShopSettings(_Section):
    name: str = "Repair shop"
    timezone: str = "UTC"
    default_language: str = Field(default="en", min_length=2, max_length=8)
    languages: list[str] = Field(default=["en", "es", "zh"], min_length=1)
    """What a customer can switch to with the 'language' command."""
    date_order: Literal["DMY", "MDY", "YMD"] = "DMY"
    """How customers here write a date in numbers: 25/12 (DMY) or 12/25 (MDY)."""
    address: str | dict[str, str] = ""
    """Where customers collect their devices; one text, or one per language (order status texts)."""
    opening_hours: str | dict[str, str] = ""
    """When customers can come; one text, or one per language (order status texts)."""
    # The WhatsApp business profile (`bot whatsapp profile --set`), with Meta's limits; its address is
    # `address` above (the default language's text when there is one per language).
    about: About | None = None
    """Under the shop's name in WhatsApp, 1 to 139 characters."""
    description: Description | None = None
    """Up to 512 characters."""
    email: Email | None = None
    websites: Websites | None = None
    """At most two, each starting with https:// (or http://)."""
    vertical: Vertical | None = None
    """Meta's industry: PROF_SERVICES or RETAIL suit a repair shop."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """Also serve GET /metrics without a token on 127.0.0.1 at this port (for a Prometheus on the same
    machine); unset: /metrics only on the main port, with the admin token or BOT_METRICS_TOKEN."""
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    """uvloop where it is installed (bot/cli/event_loop.py), or asyncio's own loop."""


class TemplateSettings(_Section):
    directory: Path = Path("templates")
    """The approved WhatsApp message templates, one YAML file each (see templates/README.md)."""


class DatabaseSettings(_Section):
    url: str = "sqlite://data/bot.db"

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgres://", "postgresql://", "asyncpg://")):
            raise ValueError("use sqlite://path/to/file.db or postgres://user@host:5432/db")
        return value


class FlowSettings(_Section):
    directory: Path = Path("flows")
    default_flow: str = "main"
    reload_seconds: float = Field(default=1.0, ge=0)
    """How often the running server looks for saved flow files (hot reload); 0 turns it off."""


class WhatsAppSettings(_Section):
    messages_per_second: float = Field(default=80, gt=0)
    pair_interval_seconds: float = Field(default=6, ge=0)
    pair_burst: int = Field(default=20, ge=1)
    request_timeout_seconds: float = Field(default=15, gt=0)
    mark_read: bool = True
    mark_read_every_seconds: float = Field(default=3, ge=0, le=60)
    """At most one mark-read per customer this often: the newest message marks the earlier ones read."""
    quote_replies: bool = False
    messaging_limit: MessagingLimit = 250
    """Meta's messaging limit for the business portfolio: unique customers reached by business-initiated
    templates in a rolling 24 hours (250, 2000, 10000, 100000 or unlimited; Meta's TIER_2K … too). A
    business_capability_update webhook replaces it; templates over it are held."""


SENDS_IN_FLIGHT_MIN, SENDS_IN_FLIGHT_MAX = 64, 1024
SEND_SECONDS = 0.25
"""About how long a send to the Cloud API takes: the sends in flight it takes to use the number's
throughput are its messages_per_second times this."""


class OutboxSettings(_Section):
    concurrency: int | None = Field(default=None, ge=1, le=SENDS_IN_FLIGHT_MAX)
    """Sends in flight at once. Unset: a quarter second of the number's throughput, at least 64 (64 at
    Meta's default 80 messages/s, 250 at 1,000): fewer cap the sends below the throughput, since each
    waits for its answer."""
    max_attempts: int = Field(default=8, ge=1, le=50)
    """The most tries for errors retried only a few times (code 1 on a 4xx, an answer without a message
    id); transient errors (5xx, timeouts, throttling) are retried until the horizon instead."""
    retry_horizon_hours: float | None = Field(default=None, gt=0, le=720)
    """How long after queueing a transient error is retried. Unset: free-form messages for as long as
    the customer's 24-hour window allows, templates for 24 hours."""

    @property
    def retry_horizon(self) -> timedelta | None:
        return None if self.retry_horizon_hours is None else timedelta(hours=self.retry_horizon_hours)


ORDER_STATUS_NAME = r"^[a-z][a-z0-9_]{0,63}$"


class OrderStatusSettings(_Section):
    name: str = Field(pattern=ORDER_STATUS_NAME)
    notify: bool = True
    """Tell the customer when an order enters this status (texts: templates/texts/order_statuses.yaml)."""


def _default_order_statuses() -> list[OrderStatusSettings]:
    names = ["received", "diagnosing", "waiting_for_parts", "in_progress", "completed", "ready_for_pickup"]
    return [
        *(OrderStatusSettings(name=name) for name in names),
        OrderStatusSettings(name="picked_up", notify=False),  # the customer is at the counter: no message
        OrderStatusSettings(name="cancelled"),  # the customer must hear that their repair will not happen
    ]


class OrderSettings(_Section):
    statuses: list[OrderStatusSettings] = Field(default_factory=_default_order_statuses, min_length=1)
    """The statuses an order can have, in their usual order; the first is a new order's default."""

    @field_validator("statuses")
    @classmethod
    def _unique_names(cls, value: list[OrderStatusSettings]) -> list[OrderStatusSettings]:
        names = [status.name for status in value]
        if duplicates := sorted({name for name in names if names.count(name) > 1}):
            raise ValueError(f"status listed twice: {', '.join(duplicates)}")
        return value


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _time_range(value: Any) -> Any:
    """'09:00-13:00' -> (time(9), time(13)); anything else is left for pydantic to refuse."""
    if not isinstance(value, str):
        return value
    start, sep, end = value.partition("-")
    try:
        if not sep:
            raise ValueError
        return (time.fromisoformat(start.strip()), time.fromisoformat(end.strip()))
    except ValueError:
        raise ValueError(f"'{value}' is not a time range; write it like 09:00-13:00") from None


def _duration(value: Any) -> timedelta:
    from bot.engine.schema import parse_duration  # the flows' own duration format: 30m, 2h, 1d

    try:
        return parse_duration(value)
    except Exception:
        raise ValueError(f"'{value}' is not a duration; write it like 30m, 2h or 1d") from None


TimeRange = Annotated[tuple[time, time], BeforeValidator(_time_range)]
Offset = Annotated[timedelta, BeforeValidator(_duration)]


def _default_opening_hours() -> dict[Weekday, list[TimeRange]]:
    weekday: list[TimeRange] = [(time(9), time(13)), (time(14), time(19))]
    return {
        "mon": weekday,
        "tue": weekday,
        "wed": weekday,
        "thu": weekday,
        "fri": weekday,
        "sat": [(time(10), time(14))],
        "sun": [],
    }


class AppointmentSettings(_Section):
    slot_minutes: int = Field(default=30, ge=5, le=480)
    """Length of one bookable slot; slots start at each opening range's start, one after the other."""
    capacity: int = Field(default=2, ge=1, le=100)
    """Appointments that may start in the same slot (benches, technicians)."""
    opening_hours: dict[Weekday, list[TimeRange]] = Field(default_factory=_default_opening_hours)
    """Per weekday, the ranges appointments can be in; a weekday left out (or []) is closed."""
    closed_days: list[date] = []
    """Holidays and other days without appointments (ISO dates)."""
    days_ahead: int = Field(default=14, ge=0, le=365)
    """Customers can book today and this many days after it."""
    min_notice_minutes: int = Field(default=60, ge=0)
    """A slot starting sooner than this is not offered in the chat."""
    reminders: list[Offset] = Field(default_factory=lambda: [timedelta(hours=24), timedelta(hours=2)])
    """When reminders go out, before the appointment ("24h", "2h", "1d", "30m")."""
    quiet_hours: TimeRange | None = (time(21), time(8))
    """Local hours in which reminders wait (it may wrap midnight); null: none."""
    check_seconds: float = Field(default=30, gt=0, le=60)
    """How often the scheduler inside `bot serve` looks for due reminders (at least once a minute)."""

    @field_validator("opening_hours")
    @classmethod
    def _ordered_ranges(cls, value: dict[Weekday, list[TimeRange]]) -> dict[Weekday, list[TimeRange]]:
        for day, ranges in value.items():
            for start, end in ranges:
                if start >= end:
                    raise ValueError(f"{day}: {start:%H:%M}-{end:%H:%M} ends before it starts")
            ordered = sorted(ranges)
            for (_, end), (start, _) in pairwise(ordered):
                if start < end:
                    raise ValueError(f"{day}: the ranges overlap at {start:%H:%M}")
            value[day] = ordered
        return value

    @field_validator("reminders")
    @classmethod
    def _distinct_offsets(cls, value: list[timedelta]) -> list[timedelta]:
        if len(set(value)) != len(value):
            raise ValueError("a reminder offset is listed twice")
        if any(offset.total_seconds() % 60 for offset in value):
            raise ValueError("reminder offsets are whole minutes")
        return sorted(value, reverse=True)

    @field_validator("quiet_hours")
    @classmethod
    def _some_quiet(cls, value: tuple[time, time] | None) -> tuple[time, time] | None:
        if value is not None and value[0] == value[1]:
            raise ValueError("quiet hours that start when they end: use null for none")
        return value


class HandoffSettings(_Section):
    """Chats handed to a person (bot/handoff/): when it happens automatically and the guards' limits."""

    after_misses: int = Field(default=4, ge=0, le=50)
    """Misunderstandings in a row after which a person takes over; 0: never automatically."""
    unclaimed_minutes: float = Field(default=10, gt=0)
    """A waiting chat nobody claimed this long gets an apology and the offer to leave a message."""
    idle_minutes: float = Field(default=30, gt=0)
    """A claimed chat with no message either way this long goes back to the bot."""
    minutes_per_chat: float = Field(default=5, gt=0)
    """The wait the customer is told: this many minutes for each chat waiting, theirs included."""
    working_hours: dict[Weekday, list[TimeRange]] | None = None
    """When technicians answer, per weekday; null: the appointments' opening hours and closed days."""
    check_seconds: float = Field(default=30, gt=0, le=60)
    """How often `bot serve` runs the guards."""
    session_hours: float = Field(default=12, gt=0, le=720)
    """How long a panel login lasts before the technician logs in again (bot/handoff/sessions.py)."""
    relay_to_whatsapp: bool = False
    """Relay handed-off chats to the claiming technician's own WhatsApp (Technician.phone): see
    bot/handoff/relay.py. Messages from an active technician's phone are then commands and replies."""


class MediaSettings(_Section):
    """Media customers send (bot/media/): fetched from the Cloud API, kept encrypted under random names."""

    fetch: bool = True
    """Download inbound images, voice notes, videos, documents and stickers (with credentials only)."""
    directory: Path = Path("data/media")
    max_mb: int = Field(default=16, ge=1, le=100)
    """The largest file kept, whatever its type allows (images 5 MB, audio and video 16, documents 100)."""


class PrivacySettings(_Section):
    retention_days: int = Field(default=365, ge=1, le=36_500)
    """Messages, their media and finished conversations older than this are deleted (bot/privacy/)."""


class LoggingSettings(_Section):
    json_: bool | Literal["auto"] = Field(default="auto", alias="json")
    """JSON lines (one object per line: time, level, logger, message and the line's fields); auto: when
    stderr is not a terminal (a service's journal, a container), plain text on a terminal."""
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """DEBUG shows phone numbers and message texts; no level above it ever does."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Secrets(_Section):
    """Credentials from the environment, under the names Meta's Cloud API set-up guides use."""

    access_token: SecretStr | None = None
    app_secret: SecretStr | None = None
    webhook_verify_token: SecretStr | None = None
    phone_number_id: str = "100000000000001"
    business_account_id: str | None = None
    api_base_url: str = DEFAULT_GRAPH_BASE_URL
    admin_token: SecretStr | None = None
    encryption_keys: SecretStr | None = None
    """BOT_ENCRYPTION_KEYS: comma-separated base64 master keys, the first encrypts (bot/master_keys.py)."""
    metrics_token: SecretStr | None = None

    @property
    def sandbox(self) -> bool:
        """No access token: outbound messages are recorded and printed, nothing calls out."""
        return self.access_token is None


class Settings(_Section):
    shop: ShopSettings = ShopSettings()
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    flows: FlowSettings = FlowSettings()
    templates: TemplateSettings = TemplateSettings()
    whatsapp: WhatsAppSettings = WhatsAppSettings()
    outbox: OutboxSettings = OutboxSettings()
    orders: OrderSettings = OrderSettings()
    appointments: AppointmentSettings = AppointmentSettings()
    handoff: HandoffSettings = HandoffSettings()
    logging: LoggingSettings = LoggingSettings()
    media: MediaSettings = MediaSettings()
    privacy: PrivacySettings = PrivacySettings()
    costs: CostSettings = CostSettings()
    limits: LimitSettings = LimitSettings()
    secrets: Secrets = Field(default_factory=Secrets, exclude=True)
    base_dir: Path = Field(default=Path("."), exclude=True)

    @property
    def sandbox(self) -> bool:
        return self.secrets.sandbox

    @property
    def sends_in_flight(self) -> int:
        """outbox.concurrency, or what the number's throughput asks for when it is unset."""
        if self.outbox.concurrency is not None:
            return self.outbox.concurrency
        wanted = math.ceil(self.whatsapp.messages_per_second * SEND_SECONDS)
        return min(SENDS_IN_FLIGHT_MAX, max(SENDS_IN_FLIGHT_MIN, wanted))

    @property
    def app_secret(self) -> str:
        """The webhook signing key; sandbox mode without one uses a fixed, loudly announced key."""
        if self.secrets.app_secret is not None:
            return self.secrets.app_secret.get_secret_value()
        return SANDBOX_APP_SECRET

    @property
    def database_url(self) -> str:
        """The Tortoise URL, with a relative SQLite path made absolute against the settings file."""
        url = self.database.url
        if url.startswith("sqlite://"):
            path = url.removeprefix("sqlite://")
            if path != ":memory:" and not path.startswith("/"):
                return f"sqlite://{(self.base_dir / path).resolve()}"
        return url

    @property
    def flows_dir(self) -> Path:
        directory = self.flows.directory
        return directory if directory.is_absolute() else (self.base_dir / directory).resolve()

    @property
    def media_dir(self) -> Path:
        directory = self.media.directory
        return directory if directory.is_absolute() else (self.base_dir / directory).resolve()

    @property
    def templates_dir(self) -> Path:
        directory = self.templates.directory
        return directory if directory.is_absolute() else (self.base_dir / directory).resolve()


_ENV_SECRETS = {
    "WHATSAPP_ACCESS_TOKEN": "access_token",
    "WHATSAPP_APP_SECRET": "app_secret",
    "WHATSAPP_WEBHOOK_VERIFY_TOKEN": "webhook_verify_token",
    "WHATSAPP_PHONE_NUMBER_ID": "phone_number_id",
    "WHATSAPP_BUSINESS_ACCOUNT_ID": "business_account_id",
    "WHATSAPP_API_BASE_URL": "api_base_url",
    "BOT_ADMIN_TOKEN": "admin_token",
    "BOT_ENCRYPTION_KEYS": "encryption_keys",
    "BOT_METRICS_TOKEN": "metrics_token",
}


def settings_file(path: Path | str | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The file load_settings reads: `path`, else BOT_SETTINGS, else ./settings.yaml."""
    env = os.environ if environ is None else environ
    return Path(path or env.get("BOT_SETTINGS") or DEFAULT_SETTINGS_FILE)


def load_settings(path: Path | str | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings file (BOT_SETTINGS, else ./settings.yaml) and apply the environment."""
    env = os.environ if environ is None else environ
    settings_path = settings_file(path, env)
    data = _read_yaml(settings_path)
    if database_url := env.get("DATABASE_URL"):
        data.setdefault("database", {})["url"] = database_url
    if flows_dir := env.get("BOT_FLOWS_DIR"):
        data.setdefault("flows", {})["directory"] = flows_dir
    secrets = {field: env[name] for name, field in _ENV_SECRETS.items() if env.get(name)}
    try:
        settings = Settings.model_validate(
            {**data, "secrets": secrets, "base_dir": settings_path.resolve().parent}
        )
    except ValidationError as exc:
        raise SettingsError(_describe(settings_path, exc)) from None
    if not settings.sandbox and settings.secrets.app_secret is None:
        raise SettingsError(
            "WHATSAPP_ACCESS_TOKEN is set but WHATSAPP_APP_SECRET is not: without the app secret webhook "
            "signatures cannot be checked, so the server runs only in sandbox mode (unset the token)."
        )
    return settings


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise SettingsError(f"{path}: settings file not found (set BOT_SETTINGS or create settings.yaml)")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise SettingsError(f"{path}: the top level must be a mapping of sections")
    return loaded


def _describe(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: invalid settings"]
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"])
        if location.startswith("secrets."):
            location = "environment " + location.removeprefix("secrets.")
        lines.append(f"  {location}: {error['msg']}")
    return "\n".join(lines)
