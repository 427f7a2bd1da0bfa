"""`bot whatsapp subscribe` and `bot whatsapp profile [--set]` against a fake Graph API: the set-up steps
done by the tool, with what Meta would refuse refused here first, before any request."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from bot.settings import Settings, SettingsError, load_settings
from bot.whatsapp.commands import profile, subscribe
from tests.fake_account import WABA_ID, FakeAccount, base_url, serve
from tests.helpers import APP_SECRET, GRAPH_TOKEN, PHONE_NUMBER_ID, REPO, VERIFY_TOKEN, write_settings

PROFILE = """\
shop:
  name: Fix-It Phone Repair
  timezone: America/New_York
  address: {en: "123 Main Street, Springfield", es: "Calle Mayor 123, Springfield"}
  opening_hours: "Mon-Sat 9am-7pm"
  about: "Phone and tablet repairs while you wait"
  description: "Screens, batteries and charging ports, most repairs the same day."
  email: hello@fixit.example
  websites: ["https://fixit.example", "https://instagram.com/fixit"]
  vertical: PROF_SERVICES
"""


@pytest.fixture
async def meta() -> AsyncIterator[tuple[FakeAccount, TestServer]]:
    fake = FakeAccount()
    server = await serve(fake)
    yield fake, server
    await server.close()


def environ(server: TestServer | None, **changes: str) -> dict[str, str]:
    env = {"WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID, "WHATSAPP_BUSINESS_ACCOUNT_ID": WABA_ID}
    if server is not None:
        env |= {
            "WHATSAPP_ACCESS_TOKEN": GRAPH_TOKEN,
            "WHATSAPP_APP_SECRET": APP_SECRET,
            "WHATSAPP_WEBHOOK_VERIFY_TOKEN": VERIFY_TOKEN,
            "WHATSAPP_API_BASE_URL": base_url(server),
        }
    return {**env, **changes}


def settings(tmp_path: Path, server: TestServer | None, text: str = PROFILE, **changes: str) -> Settings:
    path = tmp_path / "settings.yaml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path, environ(server, **changes))


async def run(command: object, *args: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await command(*args, out, err)  # type: ignore[operator]
    return code, out.getvalue(), err.getvalue()


# --- subscribe --------------------------------------------------------------------------------------------


async def test_subscribe_posts_to_the_wabas_subscribed_apps_and_shows_the_result(
    tmp_path: Path, meta: tuple[FakeAccount, TestServer]
) -> None:
    fake, server = meta
    code, out, err = await run(subscribe, settings(tmp_path, server), None, None)

    assert code == 0, err
    assert fake.requests[:2] == [
        ("POST", f"/{WABA_ID}/subscribed_apps", {}),
        ("GET", f"/{WABA_ID}/subscribed_apps", {}),
    ]
    assert out == f"subscribed to the webhooks of WABA {WABA_ID}: Fix-It Bot\n"


async def test_a_callback_url_override_goes_with_the_servers_verify_token(
    tmp_path: Path, meta: tuple[FakeAccount, TestServer]
) -> None:
    fake, server = meta
    url = "https://bot.fixit.example/webhook"
    code, out, err = await run(subscribe, settings(tmp_path, server), url, None)

    assert code == 0, err
    assert fake.requests[0] == (
        "POST",
        f"/{WABA_ID}/subscribed_apps",
        {"override_callback_uri": url, "verify_token": VERIFY_TOKEN},
    )
    assert out.endswith(f"Fix-It Bot (webhooks to {url})\n")
    assert err == ""


async def test_another_verify_token_is_sent_with_a_warning(
    tmp_path: Path, meta: tuple[FakeAccount, TestServer]
) -> None:
    fake, server = meta
    url = "https://bot.fixit.example/webhook"
    code, _, err = await run(subscribe, settings(tmp_path, server), url, "another-token")
    assert code == 0
    assert fake.requests[0][2]["verify_token"] == "another-token"
    assert "bot serve will refuse Meta's check" in err


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://bot.fixit.example/webhook", "--callback-url: Meta calls only https:// addresses"),
        (
            "https://bot.fixit.example/" + "w" * 200,
            "--callback-url: String should have at most 200 characters",
        ),
        ("bot.fixit.example/webhook", "--callback-url: Meta calls only https:// addresses"),
    ],
)
async def test_a_callback_url_meta_would_refuse_is_refused_before_any_request(
    tmp_path: Path, meta: tuple[FakeAccount, TestServer], url: str, reason: str
) -> None:
    fake, server = meta
    code, out, err = await run(subscribe, settings(tmp_path, server), url, None)
    assert (code, out) == (2, "")
    assert err.startswith(reason)
    assert fake.requests == []


async def test_a_callback_url_without_any_verify_token_is_refused(
    tmp_path: Path, meta: tuple[FakeAccount, TestServer]
) -> None:
    fake, server = meta
    config = settings(tmp_path, server, WHATSAPP_WEBHOOK_VERIFY_TOKEN="")
    code, _, err = await run(subscribe, config, "https://bot.fixit.example/webhook", None)
    assert code == 2
    assert "needs a verify token: set WHATSAPP_WEBHOOK_VERIFY_TOKEN" in err
    assert fake.requests == []


async def test_subscribe_needs_the_credentials(tmp_path: Path) -> None:
    code, _, err = await run(subscribe, settings(tmp_path, None), None, None)
    assert (code, err) == (2, "this needs WHATSAPP_ACCESS_TOKEN (sandbox mode has no account to set up)\n")


async def test_subscribe_needs_the_business_account_id(
    tmp_path: Path, meta: tuple[FakeAccount, TestServer]
) -> None:
    fake, server = meta
    code, _, err = await run(
        subscribe, settings(tmp_path, server, WHATSAPP_BUSINESS_ACCOUNT_ID=""), None, None
    )
    assert code == 2 and "WHATSAPP_BUSINESS_ACCOUNT_ID" in err
    assert fake.requests == []


# --- profile ----------------------------------------------------------------------------------------------


async def test_profile_set_sends_the_shops_fields_and_shows_what_meta_now_has(
    tmp_path: Path, meta: tuple[FakeAccount, TestServer]
) -> None:
    fake, server = meta
    code, out, err = await run(profile, settings(tmp_path, server), True)

    assert code == 0, err
    method, path, body = fake.requests[0]
    assert (method, path) == ("POST", f"/{PHONE_NUMBER_ID}/whatsapp_business_profile")
    assert body == {
        "messaging_product": "whatsapp",
        "about": "Phone and tablet repairs while you wait",
        "address": "123 Main Street, Springfield",  # the default language's, of one per language
        "description": "Screens, batteries and charging ports, most repairs the same day.",
        "email": "hello@fixit.example",
        "websites": ["https://fixit.example", "https://instagram.com/fixit"],
        "vertical": "PROF_SERVICES",
    }
    assert fake.requests[1][:2] == ("GET", f"/{PHONE_NUMBER_ID}/whatsapp_business_profile")
    assert (
        fake.requests[1][2]["fields"]
        == "about,address,description,email,profile_picture_url,websites,vertical"
    )
    assert out.splitlines() == [
        "about:       Phone and tablet repairs while you wait",
        "address:     123 Main Street, Springfield",
        "description: Screens, batteries and charging ports, most repairs the same day.",
        "email:       hello@fixit.example",
        "websites:    https://fixit.example, https://instagram.com/fixit",
        "vertical:    PROF_SERVICES",
        "profile updated from settings.yaml",
    ]


async def test_profile_shows_metas_profile_and_what_settings_would_change(
    tmp_path: Path, meta: tuple[FakeAccount, TestServer]
) -> None:
    fake, server = meta
    fake.profile = {**fake.profile, "email": "hello@fixit.example", "vertical": "PROF_SERVICES"}
    code, out, _ = await run(profile, settings(tmp_path, server), False)

    assert code == 0
    assert fake.paths("POST") == []
    lines = out.splitlines()
    assert lines[0] == "about:       Hey there! I am using WhatsApp."
    assert lines[1] == "address:     (not set)"
    assert lines[-1] == (
        "settings.yaml differs in about, address, description, websites: run `bot whatsapp profile --set`"
    )


async def test_profile_set_without_profile_fields_sends_nothing(
    tmp_path: Path, meta: tuple[FakeAccount, TestServer]
) -> None:
    fake, server = meta
    code, _, err = await run(profile, settings(tmp_path, server, "shop:\n  name: Fix-It\n"), True)
    assert code == 2 and "nothing to set" in err
    assert fake.requests == []


async def test_an_address_over_metas_limit_is_named_before_any_request(
    tmp_path: Path, meta: tuple[FakeAccount, TestServer]
) -> None:
    fake, server = meta
    text = PROFILE.replace('en: "123 Main Street, Springfield"', 'en: "' + "Main Street " * 24 + '"')
    code, _, err = await run(profile, settings(tmp_path, server, text), True)
    assert code == 2
    assert err == "shop.address: String should have at most 256 characters\n"
    assert fake.requests == []


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('  about: "' + "x" * 140 + '"', "shop.about: String should have at most 139 characters"),
        ("  description: " + "y" * 513, "shop.description: String should have at most 512 characters"),
        ("  email: not-an-email", "shop.email: Value error, 'not-an-email' is not an email address"),
        ("  websites: [fixit.example]", "shop.websites.0: Value error, 'fixit.example' is not a web address"),
        (
            "  websites: [https://a.example, https://b.example, https://c.example]",
            "shop.websites: List should",
        ),
        ("  vertical: PHONE_REPAIR", "shop.vertical: Input should be 'UNDEFINED', 'OTHER'"),
    ],
)
def test_profile_fields_in_settings_are_checked_against_metas_limits(
    tmp_path: Path, line: str, reason: str
) -> None:
    path = write_settings(tmp_path)
    path.write_text(path.read_text().replace("  default_language: en\n", f"  default_language: en\n{line}\n"))
    with pytest.raises(SettingsError) as raised:
        load_settings(path, {})
    assert reason in str(raised.value)


async def test_the_commands_run_from_the_command_line(
    tmp_path: Path, meta: tuple[FakeAccount, TestServer]
) -> None:
    fake, server = meta
    (tmp_path / "settings.yaml").write_text(PROFILE, encoding="utf-8")
    env = {**os.environ, **environ(server), "BOT_SETTINGS": str(tmp_path / "settings.yaml")}
    for args, expected in [
        (["whatsapp", "subscribe"], "subscribed to the webhooks of WABA"),
        (["whatsapp", "profile", "--set"], "profile updated from settings.yaml"),
    ]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", *args, cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE
        )
        stdout, _ = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, stdout.decode()
        assert expected in stdout.decode()
    assert fake.paths("POST") == [
        f"/{WABA_ID}/subscribed_apps",
        f"/{PHONE_NUMBER_ID}/whatsapp_business_profile",
    ]
