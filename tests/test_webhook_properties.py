"""Property-based: no signed body, however mangled, gets a 500, stores half a message or stops the bot.

Bodies are the real payloads of tests/payloads (messages, statuses, user preferences) with fields
mutated (wrong types, missing keys, nulls, 100 KB strings, NULs and lone surrogates, deep nesting,
unknown types, many messages in one body), signed and posted to the real server on SQLite and
PostgreSQL, each beside an ordinary text that must be stored whatever its neighbours carry. One
server per test serves every example: starting one costs.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.db.models import ADDRESS_LENGTH, Direction, EarlyStatus, Message
from bot.whatsapp.notifications import parse_notification
from tests.helpers import (
    INBOUND_KINDS,
    PAYLOADS,
    BotFactory,
    eventually,
    graph_sends,
    payload,
    post_webhook,
    text_notification,
)

FILES = sorted(
    path.name
    for path in PAYLOADS.glob("*.json")
    if path.name.startswith(("inbound_", "status_", "user_preferences_"))
)
_ids = itertools.count()
FRESH = "wamid.P"
"""Starts every message and status id the strategy writes; the test makes them unique to the example (a
strategy must not depend on outside state), so an earlier example never makes one a duplicate."""
SENT = "wamid.SENT"
"""Stands for the wamid of a reply the bot sent (the test puts a real one in before signing)."""


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value] if depth % 2 else {"k": value}
    return value


# every character, lone surrogates (category Cs) and NUL included
_characters = st.characters(exclude_categories=())
_short_text = st.text(_characters, max_size=12)
_long_text = st.builds(
    lambda text, times: (text * times)[:100_000], _short_text.filter(bool), st.integers(1, 100_000)
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**31 - 2, max_value=2**31 + 2),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(),
    _short_text,
    _long_text,
    st.sampled_from(["", "\x00", "\ud800", "\udfff", "\ud83d", "a\x00b", "9" * 100_000, "😀" * 30_000]),
    st.sampled_from(["-1", "99999999999999999999", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00"]),
    st.sampled_from([*sorted(INBOUND_KINDS), "interactive", "nfm_reply", "poll", "call", "edit", "revoke"]),
)
_values = st.one_of(
    _scalars,
    st.integers(1, 120).map(_nested),
    st.recursive(
        _scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_short_text, inner, max_size=4)),
        max_leaves=8,
    ),
)


def _slots(node: Any) -> Iterator[tuple[dict[str, Any] | list[Any], Any]]:
    """Every (container, key or index) in the tree: the places a mutation can hit."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield node, key
            yield from _slots(value)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield node, index
            yield from _slots(value)


def _values_of(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The change values, as far as the mutations left them in shape."""
    entries = body.get("entry")
    for entry in entries if isinstance(entries, list) else []:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        for change in changes if isinstance(changes, list) else []:
            value = change.get("value") if isinstance(change, dict) else None
            if isinstance(value, dict):
                yield value


def _hot_slots(body: dict[str, Any]) -> list[tuple[dict[str, Any] | list[Any], Any]]:
    """The slots under messages, statuses, contacts and user preferences: what reaches a column."""
    return [
        slot
        for value in _values_of(body)
        for key in ("messages", "statuses", "contacts", "user_preferences")
        if isinstance(value.get(key), list)
        for slot in _slots(value[key])
    ]


_odd_characters = st.sampled_from(["\x00", "\ud800", "\udbff", "\udc00", "\udfff"]) | _characters


@st.composite
def _stretched(draw: st.DrawFn, text: str) -> str:
    """Just over a column size, or 100 KB."""
    if draw(st.booleans()):
        return (text or "x") * (100_000 // max(len(text), 1))
    return text + "y" * draw(st.sampled_from([1, 17, 33, 129, 257, 1025, 4097]))


@st.composite
def mangled_bodies(draw: st.DrawFn) -> bytes:
    body = payload(draw(st.sampled_from(FILES)))
    for value in _values_of(body):
        items = value.get("messages") or value.get("statuses") or []
        if items and draw(st.integers(0, 9)) == 0:  # now and then many in one body
            items[:] = [copy.deepcopy(items[0]) for _ in range(draw(st.integers(2, 60)))]
        for number, item in enumerate(items):  # made unique to the example before it is posted
            item["id"] = f"{FRESH}{number}"
        if value.get("statuses") and draw(st.booleans()):  # about a reply the bot sent: updates its row
            value["statuses"][0]["id"] = SENT
    for _ in range(draw(st.integers(1, 4))):
        slots = _hot_slots(body) if draw(st.integers(0, 3)) else list(_slots(body))
        if not slots:
            break
        container, key = draw(st.sampled_from(slots))
        current = container[key]
        action = draw(st.sampled_from(["replace", "delete", "add", "stretch", "inject", "empty"]))
        if action in ("stretch", "inject", "empty") and isinstance(current, str):
            if action == "stretch":
                container[key] = draw(_stretched(current))
            elif action == "inject":
                at = draw(st.integers(0, len(current)))
                container[key] = current[:at] + draw(_odd_characters) + current[at:]
            else:
                container[key] = ""
        elif action == "delete":
            del container[key]
        elif action == "add" and isinstance(container, dict):
            container[draw(_short_text)] = draw(_values)
        elif action == "add" and isinstance(container, list):
            container.append(draw(_values))
        else:
            container[key] = draw(_values)
        if not body.get("entry"):
            break
    encoding = draw(st.sampled_from(["escaped", "utf-8"]))
    if encoding == "escaped":  # \ud800 and \u0000 escapes, as most JSON encoders send them
        return json.dumps(body).encode()
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")  # a surrogate's own bytes


@pytest.fixture
async def client(bot_client: BotFactory) -> TestClient[web.Request, web.Application]:
    return await bot_client()


def _assert_complete(row: Message) -> None:
    """An inbound row holds all of its message, as the inbox needs it."""
    assert row.address and len(row.address) <= ADDRESS_LENGTH and row.customer_id is not None
    assert row.whatsapp_message_id and len(row.whatsapp_message_id) <= 128
    assert row.message_type in INBOUND_KINDS
    assert row.received_at is not None and row.sent_at is not None
    assert row.payload is not None and "profile_name" in row.payload
    raw = row.payload["message"]
    assert raw["id"] == row.whatsapp_message_id and (raw.get("from") or raw["from_user_id"]) == row.address


async def _inbound_count() -> int:
    return await Message.filter(message_direction=Direction.INBOUND).count()


SETTINGS = settings(
    max_examples=300,
    deadline=None,
    database=None,  # nothing written into the repository
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@SETTINGS
@given(bodies=st.lists(mangled_bodies(), min_size=1, max_size=3), twice=st.booleans())
async def test_mangled_bodies_never_fail_a_commit_nor_stop_the_bot(
    client: TestClient[web.Request, web.Application], fake_graph: TestServer, bodies: list[bytes], twice: bool
) -> None:
    example = next(_ids)
    bodies = [
        raw.replace(f'"{FRESH}'.encode(), f'"wamid.E{example}_{index}_'.encode())
        for index, raw in enumerate(bodies)
    ]
    sent = [send[4] for send in await graph_sends(fake_graph)]
    if sent:
        bodies = [raw.replace(f'"{SENT}"'.encode(), f'"{sent[-1]}"'.encode()) for raw in bodies]
    if twice:  # a redelivery in the same group commit
        bodies = [*bodies, bodies[0]]
    before = await _inbound_count()
    phone = f"1999{example:07d}"  # a new customer each time, never one of the payloads' (1555…)
    innocent = text_notification(phone, f"wamid.INNOCENT_{phone}", "hi")
    *answers, bystander = await asyncio.gather(
        *(post_webhook(client, raw) for raw in bodies), post_webhook(client, innocent)
    )
    assert bystander.status == 200
    expected: set[str] = set()
    for raw, response in zip(bodies, answers, strict=True):
        # 413: a body stretched past server.max_body_bytes (4 MiB)
        assert response.status in (200, 400, 413), (response.status, await response.text(), raw[:500])
        if response.status == 200:
            expected |= {item.message.id for item in parse_notification(raw).inbound_messages()}
    rows = await Message.filter(whatsapp_message_id__in=expected, message_direction=Direction.INBOUND)
    assert {row.whatsapp_message_id for row in rows} == expected  # all of an acknowledged body is stored
    for row in rows:
        _assert_complete(row)
    assert await _inbound_count() - before <= len(expected) + 1  # and nothing of a refused one
    assert not await EarlyStatus.filter(whatsapp_message_id="").exists()

    async def answered() -> bool:  # the inbox got past whatever came before: it never stalls
        return any(send[1] == f"+{phone}" for send in await graph_sends(fake_graph))

    await eventually(answered, within=60)
