"""The admins' dashboard in headless Chromium over seeded rows (tests/test_stats.py's week): the bars
and figures carry the numbers the seed adds up to; screenshots land in tests/output/."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.db.models import ConversationStep, TechnicianRole
from bot.handoff.tokens import create_technician
from tests.helpers import ADMIN_TOKEN, BotFactory
from tests.test_panel_e2e import Browser, _log_in
from tests.test_stats import seed


async def test_the_dashboard_draws_the_seeded_numbers(
    bot_client: BotFactory, database_url: str, tmp_path: Path
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("the browser test runs on SQLite; tests/test_stats.py covers PostgreSQL")
    client = await bot_client()
    await seed()
    for conversation, state in ((1, "start"), (1, "booked"), (2, "start")):  # two started booking, one booked
        await ConversationStep.create(
            conversation_id=conversation,
            flow="appointments",
            state=state,
            at=datetime(2026, 11, 2, 9, tzinfo=UTC),
        )
    _, token = await create_technician("Boss", TechnicianRole.ADMIN)
    browser = Browser(tmp_path)
    try:
        await _log_in(browser, client, token)
        await browser.click("#dash-toggle")
        await browser.wait_js("return document.querySelector('[data-test=day-bar]')")  # the last 30 days
        await browser.js(
            "document.querySelector('#dash-from').value = '2026-11-01';"
            "document.querySelector('#dash-to').value = '2026-11-04';"
        )
        await browser.click("#dash-form button[type=submit]")
        await browser.wait_js("return document.querySelector('#dashboard').dataset.from === '2026-11-01'")

        bars = await browser.js(
            "return [...document.querySelectorAll('[data-test=day-bar]')].map(g => "
            "[g.dataset.period, g.dataset.inbound, g.dataset.outbound, g.querySelector('title').textContent])"
        )
        assert bars == [
            ["2026-11-01", "1", "1", "2026-11-01: 1 in, 1 out"],
            ["2026-11-02", "2", "3", "2026-11-02: 2 in, 3 out"],
            ["2026-11-03", "0", "2", "2026-11-03: 0 in, 2 out"],
        ]
        delivery = await browser.js(
            "return Object.fromEntries([...document.querySelectorAll('[data-test=delivery-bar]')]"
            ".map(g => [g.dataset.status, [g.dataset.count, g.dataset.rate || null]]))"
        )
        assert delivery == {
            "sent": ["4", None],
            "delivered": ["2", "0.5"],
            "read": ["1", "0.5"],
            "failed": ["3", None],
        }
        assert (
            await browser.js("return document.querySelector('[data-test=delivery-rate]').textContent")
            == "50.0%"
        )
        failures = await browser.js(
            "return [...document.querySelectorAll('[data-test=failure-bar]')]"
            ".map(g => [g.dataset.code, g.dataset.count, g.querySelector('title').textContent])"
        )
        assert [f[:2] for f in failures] == [["131026", "2"], ["131047", "1"]]
        assert "not a WhatsApp user" in failures[0][2]
        waits = await browser.js(
            "return [...document.querySelectorAll('[data-test=wait-bar]')]"
            ".map(g => [g.dataset.percentile, g.dataset.seconds])"
        )
        assert waits == [["median", "60"], ["p90", "60"]]
        assert await browser.js("return document.querySelector('[data-test=handoffs]').textContent") == "2"
        flows = await browser.js(
            "return [...document.querySelectorAll('[data-test=flow]')].map(svg => svg.dataset.flow)"
        )
        assert flows == ["appointments", "main", "orders"]
        booked = "[data-test=flow][data-flow=appointments] [data-test=flow-state][data-state=booked]"
        assert await browser.js(
            "return document.querySelector(arguments[0]).classList.contains('end')", booked
        )
        assert await browser.js("return document.querySelector(arguments[0]).dataset.count", booked) == "1"
        start = booked.replace("booked", "start")
        assert await browser.js("return document.querySelector(arguments[0]).dataset.count", start) == "2"
        heading = await browser.js("return document.querySelector('#dash-flow-appointments h3').textContent")
        assert heading == "Flow appointments: 2 entered"
        await browser.screenshot("dashboard.png")
        await browser.js("document.querySelector('#dash-flow-appointments').scrollIntoView()")
        await browser.screenshot("dashboard-flow.png")
        await browser.call(browser.driver.set_window_size, 390, 844)  # a phone: one column
        await browser.wait_js(
            "return document.querySelector('#dash-messages').getBoundingClientRect().width <= 390"
        )
        await browser.screenshot("dashboard-phone.png")
    finally:
        await asyncio.to_thread(browser.quit)


async def test_the_dashboard_api_is_for_admins(bot_client: BotFactory) -> None:
    client = await bot_client()
    _, technician = await create_technician("Tess")
    assert (await client.get("/api/stats/flows")).status == 401
    refused = await client.get("/api/stats/flows", headers={"Authorization": f"Bearer {technician}"})
    assert refused.status == 403
    answer = await client.get("/api/stats/flows", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    graph = await answer.json()
    assert [flow["flow"] for flow in graph["flows"]] == ["appointments", "main", "orders"]
    assert {"source", "target", "label"} <= set(graph["edges"][0])
