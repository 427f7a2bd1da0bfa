"""The log of a whole conversation, searched: no message text, profile name, token, key or secret at
INFO or above, and phone numbers only as their last four digits (`***2233`), whoever logs them."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from bot.app import create_app
from bot.db.models import DeliveryStatus, Direction, Message
from bot.handoff.tokens import create_technician
from bot.monitoring.logs import JsonFormatter, PhoneMasker, mask_phones
from bot.orders.keys import create_key
from tests.helpers import (
    ADMIN_TOKEN,
    APP_SECRET,
    BENCH,
    ENCRYPTION_KEY,
    GRAPH_TOKEN,
    VERIFY_TOKEN,
    AppFactory,
    eventually,
    graph_base,
    make_settings,
    post_webhook,
    text_notification,
)

PHONE = "15550112233"
NAME = "Zebulon Quargle"
TEXTS = [
    "hi",
    "my screen is cracked and my pin is 8642",
    "I want a human please",
    "my address is 77 Larkspur Lane",
]
REPLY = "We can fix it tomorrow, Zebulon"
NOTE = "customer seems upset about the Larkspur visit"


@pytest.fixture
async def flaky_graph() -> AsyncIterator[TestServer]:
    """The fake Graph API answering every 3rd send with 130429, so the outbox's retry lines run."""
    sys.path.insert(0, str(BENCH))
    try:
        import fake_graph
    finally:
        sys.path.remove(str(BENCH))
    server = TestServer(fake_graph.build_app(token=GRAPH_TOKEN, fail_every=3))
    await server.start_server()
    yield server
    await server.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_whole_conversations_log_holds_no_text_name_secret_or_whole_number(
    serve_app: AppFactory,
    tmp_path: Path,
    database_url: str,
    flaky_graph: TestServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    settings = make_settings(tmp_path, database_url, graph_base(flaky_graph))
    client = await serve_app(create_app(settings))
    key = await create_key("shop-pos")
    _, token = await create_technician("Ana")
    order = {
        "order_number": "R-7781",
        "customer_phone": f"+{PHONE}",
        "customer_name": NAME,
        "device_model": "Pixel 7",
        "problem": "cracked screen, pin 8642",
        "status": "received",
    }
    assert (await client.post("/api/orders", json=order, headers=bearer(key))).status == 201
    for number, text in enumerate(TEXTS):
        notification = text_notification(PHONE, f"wamid.LOGPRIV.{number}", text, name=NAME)
        assert (await post_webhook(client, notification)).status == 200

        async def handled(wamid: str = f"wamid.LOGPRIV.{number}") -> bool:
            row = await Message.get_or_none(whatsapp_message_id=wamid)
            return row is not None and row.processed_at is not None

        await eventually(handled)
    session = (await (await client.post("/api/tech/sessions", headers=bearer(token))).json())["session"]
    assert (await client.post(f"/api/tech/chats/{PHONE}/claim", headers=bearer(session))).status == 200
    sent = await client.post(
        f"/api/tech/chats/{PHONE}/messages", json={"text": REPLY}, headers=bearer(session)
    )
    assert sent.status == 200
    noted = await client.post(f"/api/tech/chats/{PHONE}/notes", json={"text": NOTE}, headers=bearer(session))
    assert noted.status == 200
    log_api = await client.get(f"/api/conversations/{PHONE}/messages", headers=bearer(ADMIN_TOKEN))
    assert log_api.status == 200
    assert (
        await client.patch("/api/orders/R-7781", json={"status": "in_progress"}, headers=bearer(key))
    ).status == 200
    assert (
        await client.get(f"/webhook?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1")
    ).status == 200
    assert (await client.get("/api/tech/me", headers=bearer("rt_wrong-token-value"))).status == 401

    async def all_sent() -> bool:
        return not await Message.filter(
            message_direction=Direction.OUTBOUND, delivery_status=DeliveryStatus.QUEUED
        ).exists()

    await eventually(all_sent, within=30)
    assert await Message.filter(message_direction=Direction.OUTBOUND, attempts__gt=1).exists()  # retried

    lines = [  # the test server's own access log is left out: `bot serve` runs with access_log=None
        JsonFormatter().format(r)
        for r in caplog.records
        if r.levelno >= logging.INFO and r.name != "aiohttp.access"
    ]
    log = "\n".join(lines)
    assert "***2233" in log  # the retry lines name the customer by the last four digits
    forbidden = [
        PHONE,
        NAME,
        "Zebulon",
        "Quargle",
        "8642",
        "Larkspur",
        "cracked",
        REPLY,
        NOTE,
        key,
        key.removeprefix("rb_"),
        token,
        token.removeprefix("rt_"),
        session,
        "wrong-token-value",
        ADMIN_TOKEN,
        APP_SECRET,
        GRAPH_TOKEN,
        VERIFY_TOKEN,
        ENCRYPTION_KEY,
    ]
    for secret in forbidden:
        assert secret not in log, f"{secret!r} logged:\n" + "\n".join(
            line for line in lines if secret in line
        )


def test_the_masker_hides_all_but_the_last_four_digits_of_every_number() -> None:
    assert mask_phones("send 12 to 15550112233: 130429") == "send 12 to ***2233: 130429"
    assert mask_phones("+1 555-011-2233 and +44 20 7946 0958") == "***2233 and ***0958"
    assert mask_phones("wamid.HBgLMTU1NTAwMDIyMjI order R-1042 at 2026-12-02 10:30") == (
        "wamid.HBgLMTU1NTAwMDIyMjI order R-1042 at 2026-12-02 10:30"
    )
    # a key id of 8 hex digits that happen to be all decimal is the operator's clue, not a number
    assert mask_phones("encryption key 76813348 is not in BOT_ENCRYPTION_KEYS") == (
        "encryption key 76813348 is not in BOT_ENCRYPTION_KEYS"
    )
    assert mask_phones("key 15550112233") == "key ***2233"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(PhoneMasker())
    logger = logging.getLogger("tests.masker")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        logger.warning("from %s: %s", "15550112233", "x")
        logger.debug("debug keeps %s", "15550112233")
        try:
            raise ValueError("no customer 15550112233")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert out.startswith("from ***2233: x\ndebug keeps 15550112233\nfailed\nTraceback")
    assert "ValueError: no customer ***2233" in out and out.count("15550112233") == 1
