"""The CLI's WhatsApp account commands: `bot whatsapp subscribe` and `bot whatsapp profile [--set]`.

Both need the live credentials (WHATSAPP_ACCESS_TOKEN; subscribe also WHATSAPP_BUSINESS_ACCOUNT_ID).
What they send is checked first (a callback URL Meta would refuse, a profile field over its limit), so a
mistake is named here and nothing half-done reaches Meta. Exit 0 done, 1 Meta refused, 2 bad input.
"""

from __future__ import annotations

import hmac
import sys
from typing import Annotated, TextIO

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, ValidationError
from yarl import URL

from bot.settings import Settings
from bot.whatsapp.account import CALLBACK_URL_MAX, SubscribedApp, business_account
from bot.whatsapp.errors import GraphError
from bot.whatsapp.profile import PROFILE_FIELDS, BusinessProfile, ProfileAtMeta

VERIFY_TOKEN_MAX = 512
"""Meta sets no maximum; ours keeps an absurd value out of the request."""


def _https_url(value: str) -> str:
    url = URL(value)
    if url.scheme != "https" or not url.host:
        raise ValueError("Meta calls only https:// addresses with a valid certificate")
    return value


CallbackUrl = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=CALLBACK_URL_MAX), AfterValidator(_https_url)
]
VerifyToken = Annotated[str, StringConstraints(min_length=1, max_length=VERIFY_TOKEN_MAX)]


class SubscribeRequest(BaseModel):
    """`POST /{waba-id}/subscribed_apps`: with a callback URL, Meta sends the WABA's webhooks there."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    callback_url: CallbackUrl | None = None
    verify_token: VerifyToken | None = None


def _live(settings: Settings, err: TextIO, *, waba: bool) -> bool:
    if settings.sandbox:
        print("this needs WHATSAPP_ACCESS_TOKEN (sandbox mode has no account to set up)", file=err)
        return False
    if waba and not settings.secrets.business_account_id:
        print("this needs WHATSAPP_BUSINESS_ACCOUNT_ID, the WhatsApp Business Account's id", file=err)
        return False
    return True


async def subscribe(
    settings: Settings,
    callback_url: str | None,
    verify_token: str | None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Subscribe the app to the WABA's webhooks (optionally to another callback URL), then show it."""
    if not _live(settings, err, waba=True):
        return 2
    served_token = settings.secrets.webhook_verify_token
    served = served_token.get_secret_value() if served_token else None
    if callback_url is not None and verify_token is None:
        verify_token = served
        if verify_token is None:
            print(
                "a callback URL needs a verify token: set WHATSAPP_WEBHOOK_VERIFY_TOKEN (what bot serve "
                "answers Meta's check with) or give --verify-token",
                file=err,
            )
            return 2
    try:
        request = SubscribeRequest(callback_url=callback_url, verify_token=verify_token)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            print(f"--{str(error['loc'][0]).replace('_', '-')}: {_reason(error['msg'])}", file=err)
        return 2
    same = served is not None and hmac.compare_digest(str(request.verify_token).encode(), served.encode())
    if request.callback_url and not same:  # constant time, like every token comparison
        print(
            "warning: this verify token is not WHATSAPP_WEBHOOK_VERIFY_TOKEN, so bot serve will refuse "
            "Meta's check of the callback URL",
            file=err,
        )
    try:
        async with business_account(settings) as account:
            await account.subscribe(request.callback_url, request.verify_token)
            apps = await account.subscribed_apps()
    except GraphError as exc:
        print(f"Meta refused: {exc}", file=err)
        return 1
    account_id = settings.secrets.business_account_id
    subscribed = ", ".join(_app(app) for app in apps) or "no app listed yet"
    print(f"subscribed to the webhooks of WABA {account_id}: {subscribed}", file=out)
    return 0


def _app(app: SubscribedApp) -> str:
    return app.name + (f" (webhooks to {app.override_callback_uri})" if app.override_callback_uri else "")


def profile_from_settings(settings: Settings) -> BusinessProfile:
    """The profile `shop:` describes; raises ValidationError naming `shop.<field>`."""
    shop = settings.shop
    address = shop.address
    if not isinstance(address, str):
        address = address.get(shop.default_language) or next(iter(address.values()), "")
    values = {
        "about": shop.about,
        "address": address.strip() or None,
        "description": shop.description,
        "email": shop.email,
        "websites": shop.websites,
        "vertical": shop.vertical,
    }
    return BusinessProfile.model_validate(values)


async def profile(
    settings: Settings, set_it: bool, out: TextIO = sys.stdout, err: TextIO = sys.stderr
) -> int:
    """Show the business profile at Meta; with `set_it`, first send the one `shop:` describes."""
    if not _live(settings, err, waba=False):
        return 2
    try:
        wanted = profile_from_settings(settings)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            where = ".".join(str(part) for part in error["loc"])
            print(f"shop.{where}: {_reason(error['msg'])}", file=err)
        return 2
    if set_it and wanted.empty:
        fields = ", ".join(PROFILE_FIELDS)
        print(f"nothing to set: give some of {fields} under shop: in settings.yaml", file=err)
        return 2
    try:
        async with business_account(settings) as account:
            if set_it:
                await account.set_profile(wanted)
            current = await account.profile()
    except GraphError as exc:
        print(f"Meta refused: {exc}", file=err)
        return 1
    _print_profile(current, out)
    differ = _differences(current, wanted)
    if set_it:
        print("profile updated from settings.yaml", file=out)
    elif differ:
        print(f"settings.yaml differs in {', '.join(differ)}: run `bot whatsapp profile --set`", file=out)
    return 0


def _print_profile(current: ProfileAtMeta, out: TextIO) -> None:
    for name in PROFILE_FIELDS:
        value = getattr(current, name)
        shown = ", ".join(value) if isinstance(value, list) else value
        print(f"{name + ':':<13}{shown or '(not set)'}", file=out)


def _differences(current: ProfileAtMeta, wanted: BusinessProfile) -> list[str]:
    """Fields settings.yaml sets to something other than what Meta shows."""
    return [
        name
        for name, value in wanted.model_dump(exclude_none=True).items()
        if value != getattr(current, name)
    ]


def _reason(message: str) -> str:
    return message.removeprefix("Value error, ")
