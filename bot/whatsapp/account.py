"""The business account's set-up over the Graph API: the phone number's standing, the app's webhook
subscription on the WhatsApp Business Account (WABA), and the business profile.

`bot doctor` and `bot whatsapp subscribe|profile` use it; the same `Transport` as the message client, so
the bearer token, the versioned base URL and Graph errors (`GraphError` subclasses) work the same way.
Answers are read with pydantic models; one that lacks what it must hold is an `UnexpectedResponse`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel, ConfigDict, ValidationError

from bot.settings import Settings
from bot.whatsapp.client import HttpTransport, Transport
from bot.whatsapp.errors import UnexpectedResponse
from bot.whatsapp.profile import BusinessProfile, ProfileAtMeta

PHONE_NUMBER_FIELDS = (
    "display_phone_number,verified_name,quality_rating,throughput,whatsapp_business_manager_messaging_limit"
)
"""`messaging_limit_tier` is deprecated: Meta now reads the (portfolio's) limit from
whatsapp_business_manager_messaging_limit."""
PROFILE_QUERY = "about,address,description,email,profile_picture_url,websites,vertical"
CALLBACK_URL_MAX = 200
"""Meta's limit on `override_callback_uri`."""

Model = TypeVar("Model", bound=BaseModel)


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Throughput(_Answer):
    level: str | None = None


class PhoneNumberInfo(_Answer):
    """`GET /{phone-number-id}`: what WhatsApp says about the business number."""

    id: str | None = None
    display_phone_number: str
    verified_name: str | None = None
    quality_rating: str | None = None
    throughput: Throughput | None = None
    whatsapp_business_manager_messaging_limit: str | None = None
    messaging_limit_tier: str | None = None
    """Deprecated by Meta; read only when an older API version still answers with it."""

    @property
    def messaging_limit(self) -> str | None:
        return self.whatsapp_business_manager_messaging_limit or self.messaging_limit_tier


class AppData(_Answer):
    id: str | None = None
    name: str | None = None
    link: str | None = None


class SubscribedApp(_Answer):
    whatsapp_business_api_data: AppData | None = None
    override_callback_uri: str | None = None

    @property
    def name(self) -> str:
        data = self.whatsapp_business_api_data
        if data is None:
            return "an app"
        return data.name or (f"app {data.id}" if data.id else "an app")


class SubscribedApps(_Answer):
    data: list[SubscribedApp]


class ProfilePage(_Answer):
    data: list[ProfileAtMeta]


class Success(_Answer):
    success: bool


class BusinessAccount:
    """One business phone number and its WABA, over `transport` (paths relative to the versioned base)."""

    def __init__(self, transport: Transport, phone_number_id: str, waba_id: str | None) -> None:
        self.transport = transport
        self.phone_number_id = phone_number_id
        self.waba_id = waba_id

    async def phone_number(self) -> PhoneNumberInfo:
        answer = await self.transport.get_json(self.phone_number_id, {"fields": PHONE_NUMBER_FIELDS})
        return _read(PhoneNumberInfo, answer, "the phone number")

    async def subscribed_apps(self) -> list[SubscribedApp]:
        answer = await self.transport.get_json(f"{self._waba()}/subscribed_apps")
        return _read(SubscribedApps, answer, "the subscribed apps").data

    async def subscribe(self, callback_url: str | None = None, verify_token: str | None = None) -> None:
        """Subscribe the token's app to the WABA's webhooks; with a callback URL (and the verify token
        Meta will send it) the WABA's webhooks go there instead of the app's callback URL."""
        body: dict[str, Any] = {}
        if callback_url is not None:
            if verify_token is None:
                raise ValueError("a callback URL needs the verify token Meta will send to it")
            body = {"override_callback_uri": callback_url, "verify_token": verify_token}
        answer = await self.transport.post_json(f"{self._waba()}/subscribed_apps", body)
        _succeeded(answer, "subscribing the app")

    async def profile(self) -> ProfileAtMeta:
        answer = await self.transport.get_json(
            f"{self.phone_number_id}/whatsapp_business_profile", {"fields": PROFILE_QUERY}
        )
        page = _read(ProfilePage, answer, "the business profile")
        return page.data[0] if page.data else ProfileAtMeta()

    async def set_profile(self, profile: BusinessProfile) -> None:
        answer = await self.transport.post_json(
            f"{self.phone_number_id}/whatsapp_business_profile", profile.request_body()
        )
        _succeeded(answer, "updating the business profile")

    def _waba(self) -> str:
        if not self.waba_id:
            raise ValueError("WHATSAPP_BUSINESS_ACCOUNT_ID is not set")
        return self.waba_id


def _read(model: type[Model], answer: dict[str, Any], what: str) -> Model:
    try:
        return model.model_validate(answer)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise UnexpectedResponse.about(f"{what}: {where}: {first['msg']}", answer, 200) from None


def _succeeded(answer: dict[str, Any], what: str) -> None:
    if not _read(Success, answer, what).success:
        raise UnexpectedResponse.about(f"{what}: success is not true", answer, 200)


@asynccontextmanager
async def graph_transport(settings: Settings) -> AsyncIterator[HttpTransport]:
    """An HttpTransport with the access token over its own session, closed on the way out (the CLI's
    commands; the server shares its session instead). ValueError in sandbox mode."""
    token = settings.secrets.access_token
    if token is None:
        raise ValueError("WHATSAPP_ACCESS_TOKEN is not set (sandbox mode)")
    timeout = settings.whatsapp.request_timeout_seconds
    async with aiohttp.ClientSession() as session:
        yield HttpTransport(session, settings.secrets.api_base_url, token.get_secret_value(), timeout=timeout)


@asynccontextmanager
async def business_account(settings: Settings) -> AsyncIterator[BusinessAccount]:
    async with graph_transport(settings) as transport:
        yield BusinessAccount(
            transport, settings.secrets.phone_number_id, settings.secrets.business_account_id
        )
