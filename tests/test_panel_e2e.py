"""The technician panel end to end, in headless Chromium (Debian's chromium and chromium-driver).

The real server (create_app) runs in this test's event loop and sends to the fake Graph API; Selenium
is blocking, so every browser call runs in a thread (`Browser.call`) and the server keeps answering.
`make test` installs chromium and chromium-driver when they are missing; the test never downloads a
browser. A screenshot of the panel lands in tests/output/ (not committed).
"""

from __future__ import annotations

import asyncio
import copy
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from bot.db.models import ConsentAction, ConsentScope, ConsentSource, Customer, Direction, Message
from bot.privacy.consent import record
from tests.helpers import (
    REPO,
    BotFactory,
    eventually,
    graph_sends,
    message_with,
    payload,
    post_webhook,
    text_notification,
)

if TYPE_CHECKING:
    from aiohttp.test_utils import TestServer
    from selenium.webdriver.remote.webdriver import WebDriver

OUTPUT = REPO / "tests" / "output"
CUSTOMER = "15550007777"
REPLY = "Hi Alex, Tess here. Your screen is in stock."
T = TypeVar("T")


def _find(name: str) -> str | None:
    return shutil.which(name) or next(
        (path for path in (f"/usr/bin/{name}", f"/usr/lib/chromium/{name}") if Path(path).exists()), None
    )


class Browser:
    """A headless Chromium; `call` runs a blocking Selenium step off the event loop."""

    def __init__(self, tmp_path: Path) -> None:
        try:
            from selenium import webdriver
            from selenium.webdriver.chrome.service import Service
        except ImportError:
            pytest.skip("selenium is not installed (pip install -e '.[test]')")
        chromium, driver = _find("chromium"), _find("chromedriver")
        if not chromium or not driver:
            pytest.skip(
                "Debian's chromium and chromium-driver are not installed "
                "(`make test` installs them: apt-get install chromium chromium-driver)"
            )
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        # The flags a closed network and a root container need; nothing reaches out to Google.
        for flag in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,860",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
        ):
            options.add_argument(flag)
        self.driver: WebDriver = webdriver.Chrome(options=options, service=Service(executable_path=driver))

    async def call(self, step: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(step, *args)

    async def js(self, script: str, *args: Any) -> Any:
        return await self.call(self.driver.execute_script, script, *args)

    async def wait_js(self, script: str, *args: Any, within: float = 15.0) -> None:
        """Wait until the script (a `return ...` expression in the page) is truthy."""

        async def holds() -> bool:
            return bool(await self.js(script, *args))

        try:
            await eventually(holds, within=within)
        except AssertionError:
            await self.screenshot("panel-failure.png")
            raise AssertionError(f"in the browser, never true: {script} {args}") from None

    async def click(self, css: str) -> None:
        await self.wait_js("const e = document.querySelector(arguments[0]); return e && e.offsetParent", css)
        element = await self.call(self.driver.find_element, "css selector", css)
        await self.call(element.click)

    async def screenshot(self, name: str) -> None:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        await self.call(self.driver.save_screenshot, str(OUTPUT / name))

    def quit(self) -> None:
        self.driver.quit()


def _status_webhook(wamid: str, status: str) -> dict[str, Any]:
    body = copy.deepcopy(payload("status_delivered.json"))
    entry = body["entry"][0]["changes"][0]["value"]["statuses"][0]
    entry.update(id=wamid, status=status, recipient_id=CUSTOMER, timestamp=str(int(time.time())))
    return body


async def _sends_to(fake_graph: TestServer) -> list[list[Any]]:
    """The fake Graph API's sends to our customer (`to` goes out with Meta's '+')."""
    return [send for send in await graph_sends(fake_graph) if send[1].lstrip("+") == CUSTOMER]


async def _log_in(browser: Browser, client: Any, token: str) -> None:
    """Open the panel, log in with the token, and wait for the WebSocket to come up."""
    await browser.call(browser.driver.get, str(client.server.make_url("/panel")))
    await browser.wait_js("return !document.querySelector('#login-view').hidden")
    element = await browser.call(browser.driver.find_element, "css selector", "#token")
    await browser.call(element.send_keys, token)
    await browser.click("#login")
    await browser.wait_js("return document.querySelector('#conn').dataset.state === 'online'")


async def test_a_technician_takes_a_chat_in_the_panel_and_gives_it_back(
    bot_client: BotFactory, database_url: str, fake_graph: TestServer, tmp_path: Path
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("the browser test runs on SQLite; the technician API's tests cover PostgreSQL")
    from bot.handoff.tokens import create_technician

    client = await bot_client()
    _, token = await create_technician("Tess")
    browser = Browser(tmp_path)
    try:
        # log in with the token; the WebSocket comes up
        await _log_in(browser, client, token)
        assert "Tess" in await browser.js("return document.querySelector('#me').textContent")

        # a customer asks for a person: the chat appears in the queue live
        assert (await post_webhook(client, text_notification(CUSTOMER, "wamid.E2E_1", "hi"))).status == 200

        async def greeted() -> bool:
            return len(await _sends_to(fake_graph)) >= 1

        await eventually(greeted)
        # they had stopped marketing messages in WhatsApp: the customer pane says so, with since when
        customer = await Customer.get(wa_id=CUSTOMER)
        stopped = ConsentSource.USER_PREFERENCES
        await record(customer, ConsentScope.MARKETING, ConsentAction.OPT_OUT, stopped, customer.created_at)
        notification = text_notification(CUSTOMER, "wamid.E2E_2", "technician")
        assert (await post_webhook(client, notification)).status == 200
        item = f"[data-test=queue-item][data-phone='{CUSTOMER}']"
        await browser.wait_js("return document.querySelector(arguments[0])", item)

        # claim it, and answer with Enter
        await browser.click(item)
        await browser.wait_js(
            "const c = document.querySelector('[data-test=consent]');"
            " return c && !c.hidden && c.textContent.includes('Marketing opted out since')"
        )
        assert "Opted out (STOP)" not in await browser.js(
            "return document.querySelector('#consent').textContent"
        )
        await browser.click("#claim")
        await browser.wait_js("return document.querySelector('#release').offsetParent")
        await browser.wait_js("return !document.querySelector('#composer').disabled")
        composer = await browser.call(browser.driver.find_element, "css selector", "#composer")
        await browser.call(composer.send_keys, REPLY)
        from selenium.webdriver.common.keys import Keys

        await browser.call(composer.send_keys, Keys.ENTER)

        # the reply reached the fake Graph API
        async def reply_sent() -> bool:
            rows = await Message.filter(address=CUSTOMER, message_direction=Direction.OUTBOUND)
            return any(row.message_content == REPLY and row.whatsapp_message_id for row in rows)

        await eventually(reply_sent)
        row = await message_with(REPLY, address=CUSTOMER)
        wamid = row.whatsapp_message_id
        assert wamid is not None
        assert row.technician_id is not None
        assert any(send[4] == wamid and send[2] == "text" for send in await _sends_to(fake_graph))
        bubble_tick = f"[data-test=bubble][data-wamid='{wamid}'] [data-test=tick]"
        await browser.wait_js("return document.querySelector(arguments[0])", bubble_tick)

        # a delivered status webhook turns the tick into ✓✓ without a reload
        assert (await post_webhook(client, _status_webhook(wamid, "delivered"))).status == 200
        await browser.wait_js(
            "const t = document.querySelector(arguments[0]); return t && t.dataset.status === 'delivered'",
            bubble_tick,
        )
        tick_text = await browser.js("return document.querySelector(arguments[0]).textContent", bubble_tick)
        assert tick_text == "✓✓"
        await browser.screenshot("panel.png")
        # the same page on a phone: one pane at a time
        await browser.call(browser.driver.set_window_size, 390, 844)
        await browser.screenshot("panel-phone.png")
        await browser.call(browser.driver.set_window_size, 1280, 860)

        # release: the bot answers the customer's next message again
        await browser.click("#release")
        await browser.wait_js("return document.querySelector('#claim').offsetParent")
        assert (await post_webhook(client, text_notification(CUSTOMER, "wamid.E2E_3", "hi"))).status == 200

        async def bot_answered() -> bool:
            answers = await Message.filter(
                address=CUSTOMER, reply_to="wamid.E2E_3", message_direction=Direction.OUTBOUND
            ).exclude(whatsapp_message_id=None)
            sent = {send[4] for send in await _sends_to(fake_graph)}
            return any(a.technician_id is None and a.whatsapp_message_id in sent for a in answers)

        await eventually(bot_answered)
    finally:
        await asyncio.to_thread(browser.quit)


async def test_an_admin_finds_a_message_the_bot_gave_up_on_and_opens_its_chat(
    bot_client: BotFactory, database_url: str, tmp_path: Path
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("the browser test runs on SQLite; the technician API's tests cover PostgreSQL")
    from bot.db.models import TechnicianRole
    from bot.handoff.tokens import create_technician
    from tests.test_handoff_api import poison_flows

    client = await bot_client()
    poison_flows(client, tmp_path / "poison")  # `when` cannot be written: parked after its tries
    _, token = await create_technician("Boss", TechnicianRole.ADMIN)
    browser = Browser(tmp_path)
    try:
        await _log_in(browser, client, token)
        await browser.wait_js("return document.querySelector('#failed-box').offsetParent")
        assert await browser.js("return document.querySelector('#failed-count').textContent") == "0"

        assert (await post_webhook(client, text_notification(CUSTOMER, "wamid.E2E_P", "when"))).status == 200
        item = f"[data-test=failed-item][data-phone='{CUSTOMER}']"
        await browser.wait_js("return document.querySelector(arguments[0])", item)  # live, no reload
        assert "not JSON serializable" in await browser.js(
            "return document.querySelector(arguments[0]).textContent", item
        )
        await browser.click(item)
        why = "[data-test=bubble][data-wamid='wamid.E2E_P'] [data-test=not-handled]"
        await browser.wait_js("return document.querySelector(arguments[0])", why)
        assert "not JSON serializable" in await browser.js(
            "return document.querySelector(arguments[0]).textContent", why
        )
        await browser.screenshot("panel-failed.png")
    finally:
        await asyncio.to_thread(browser.quit)
