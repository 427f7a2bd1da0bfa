"""Hot reload: saved flow files go live in the running server; a bad edit is refused, nobody is stuck."""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.app import ENGINE, FLOW_WATCHER, SETTINGS
from bot.db.models import Conversation, Customer, DeliveryStatus, Message, Order
from bot.engine import FlowSet, load_flows
from bot.orders.keys import create_key
from bot.reload import FlowWatcher
from tests.helpers import REPO, BotFactory, eventually, post_webhook, text_notification
from tests.orders_helpers import PHONE as ORDER_PHONE
from tests.orders_helpers import order_json

FLOW = """\
flow: main
start: menu
states:
  menu:
    say: "{greeting}"
"""


def _write(directory: Path, greeting: str, name: str = "main.yaml") -> Path:
    path = directory / name
    path.write_text(FLOW.format(greeting=greeting), encoding="utf-8")
    return path


def _greeting(flows: FlowSet) -> object:
    return flows.flows["main"].states["menu"].say


@pytest.fixture
def flows_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "flows"
    directory.mkdir()
    _write(directory, "Hello")
    return directory


def _watcher(
    directory: Path, loaded: list[FlowSet], load: Callable[[], FlowSet] | None = None
) -> FlowWatcher:
    return FlowWatcher(
        [directory],
        load=load or (lambda: load_flows(directory)),
        on_loaded=loaded.append,
        interval=0.02,
    )


# --- the watcher on its own -------------------------------------------------------------------------


async def test_unchanged_files_cause_no_reload(flows_dir: Path) -> None:
    loaded: list[FlowSet] = []
    watcher = _watcher(flows_dir, loaded)
    for _ in range(3):
        assert not await watcher.check()
    assert loaded == []


async def test_a_good_edit_is_loaded_once_two_polls_agree(
    flows_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.reload")
    loaded: list[FlowSet] = []
    watcher = _watcher(flows_dir, loaded)
    _write(flows_dir, "Hello again")
    assert not await watcher.check()  # seen once: perhaps still being written
    _write(flows_dir, "Hello again, friend")  # it was: the editor saved more
    assert not await watcher.check()
    assert await watcher.check()  # two polls agree
    assert [_greeting(flows) for flows in loaded] == ["Hello again, friend"]
    assert "changed main.yaml" in caplog.text and "the new flows are live" in caplog.text
    assert not await watcher.check()  # and it is not loaded again
    assert len(loaded) == 1


async def test_an_edit_of_the_same_length_and_time_is_noticed(flows_dir: Path) -> None:
    """Two saves in the same clock tick (or a copy that keeps the time) look alike to mtime and size."""
    loaded: list[FlowSet] = []
    watcher = _watcher(flows_dir, loaded)
    path = flows_dir / "main.yaml"
    before = path.stat()
    _write(flows_dir, "Hallo")  # as long as "Hello"
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )
    assert not await watcher.check()
    assert await watcher.check()
    assert [_greeting(flows) for flows in loaded] == ["Hallo"]


async def test_added_and_removed_files_count_as_changes(flows_dir: Path) -> None:
    loaded: list[FlowSet] = []
    watcher = _watcher(flows_dir, loaded)
    (flows_dir / "notes.txt").write_text("not a flow")  # ignored
    assert not await watcher.check()
    assert not await watcher.check()
    (flows_dir / "other.yml").write_text("flow: other\nstart: a\nstates:\n  a:\n    say: A\n")
    assert not await watcher.check()
    assert await watcher.check()
    assert sorted(loaded[-1].flows) == ["main", "other"]
    (flows_dir / "other.yml").unlink()
    assert not await watcher.check()
    assert await watcher.check()
    assert sorted(loaded[-1].flows) == ["main"]


async def test_a_bad_edit_is_refused_logged_once_and_a_fix_is_picked_up(
    flows_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.reload")
    loaded: list[FlowSet] = []
    watcher = _watcher(flows_dir, loaded)
    path = flows_dir / "main.yaml"
    path.write_text(path.read_text().replace("    say:", "    sayy:"))
    assert not await watcher.check()
    assert await watcher.check()
    assert loaded == []
    refused = [r for r in caplog.records if "flows not reloaded" in r.getMessage()]
    assert len(refused) == 1 and refused[0].levelno == logging.WARNING
    message = refused[0].getMessage()
    assert "the last good flows keep serving" in message
    assert f"{path}:5:5: unknown key 'sayy'" in message  # file:line:column of the typo

    for _ in range(3):  # the same broken files are not reported again on every poll
        assert not await watcher.check()
    assert len([r for r in caplog.records if "flows not reloaded" in r.getMessage()]) == 1

    _write(flows_dir, "Fixed")
    assert not await watcher.check()
    assert await watcher.check()
    assert [_greeting(flows) for flows in loaded] == ["Fixed"]


async def test_an_unexpected_error_is_logged_and_the_watcher_goes_on(
    flows_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    def load() -> FlowSet:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("disk on fire")
        return load_flows(flows_dir)

    loaded: list[FlowSet] = []
    watcher = _watcher(flows_dir, loaded, load)
    watcher.start()
    try:
        _write(flows_dir, "First edit")
        await eventually(lambda: calls == 1, within=5)
        _write(flows_dir, "Second edit!!")
        await eventually(lambda: len(loaded) == 1, within=5)
    finally:
        await watcher.stop()
    assert [_greeting(flows) for flows in loaded] == ["Second edit!!"]
    failed = [r for r in caplog.records if "disk on fire" in (r.exc_text or "")]
    assert len(failed) == 1 and "last good flows keep serving" in failed[0].getMessage()


async def test_reload_can_be_turned_off(bot_client: BotFactory) -> None:
    client = await bot_client(extra=_flows_section(0, None))
    assert client.app[SETTINGS].flows.reload_seconds == 0
    assert FLOW_WATCHER not in client.app


# --- through the real server ------------------------------------------------------------------------

PHONE = "15550008181"
OTHER_PHONE = "15550008282"
OLD_MENU = "What can we do for you?"
NEW_MENU = "Which phone can we fix today?"


def _flows_section(reload_seconds: float, directory: Path | None) -> str:
    # make_settings' file already has a `flows:` section; YAML's last duplicate key wins, so say it all
    where = f"  directory: {directory}\n" if directory else f"  directory: {REPO / 'flows'}\n"
    return f"flows:\n{where}  reload_seconds: {reload_seconds}\n"


async def _replies(wamid: str, count: int = 1) -> list[Message]:
    async def sent() -> bool:
        done = await Message.filter(reply_to=wamid, delivery_status=DeliveryStatus.SENT).count()
        return done >= count

    await eventually(sent)
    return await Message.filter(reply_to=wamid).order_by("id")


async def test_saved_flows_go_live_in_the_running_server(
    bot_client: BotFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.reload")
    flows_dir = tmp_path / "live-flows"
    shutil.copytree(REPO / "flows", flows_dir)
    main = flows_dir / "main.yaml"
    original = main.read_text(encoding="utf-8")
    assert OLD_MENU in original and re.search(r"^  help:$", original, re.M), "flows/main.yaml changed"
    client = await bot_client(extra=_flows_section(0.1, flows_dir))
    engine = client.app[ENGINE]

    # before: the menu as the shop wrote it
    await post_webhook(client, text_notification(PHONE, "wamid.R1", "hi"))
    (reply,) = await _replies("wamid.R1")
    assert reply.message_content is not None and OLD_MENU in reply.message_content

    # another customer ends up in the `help` state: two misunderstandings in a row
    for n, text in enumerate(["hi", "qwerty", "asdf"], start=1):
        await post_webhook(client, text_notification(OTHER_PHONE, f"wamid.O{n}", text))
        await _replies(f"wamid.O{n}")
    other = await Conversation.get(customer_id=(await Customer.get(wa_id=OTHER_PHONE)).id)
    assert (other.flow, other.state) == ("main", "help")

    # the shop saves a new menu text: the next message gets it, no restart
    started_with = engine.flows
    main.write_text(original.replace(OLD_MENU, NEW_MENU), encoding="utf-8")
    saved_at = time.monotonic()
    await eventually(lambda: engine.flows is not started_with, within=10)
    await post_webhook(client, text_notification(PHONE, "wamid.R2", "menu"))
    (reply,) = await _replies("wamid.R2")
    elapsed = time.monotonic() - saved_at
    print(f"\nhot reload: {elapsed:.2f} s from saving main.yaml to the new reply sent")
    assert reply.message_content is not None and NEW_MENU in reply.message_content
    assert elapsed < 5

    # a broken edit is refused and logged; the last good text keeps serving
    good = engine.flows
    broken = original.replace(OLD_MENU, "Oops").replace("    say:", "    sayy:", 1)
    main.write_text(broken, encoding="utf-8")
    await eventually(lambda: "flows not reloaded" in caplog.text, within=10)
    line = broken.splitlines().index("    sayy:") + 1
    assert f"{main}:{line}:5: unknown key 'sayy'" in caplog.text
    assert engine.flows is good
    await post_webhook(client, text_notification(PHONE, "wamid.R3", "menu"))
    (reply,) = await _replies("wamid.R3")
    assert reply.message_content is not None and NEW_MENU in reply.message_content

    # an edit renames `help`: the customer who was there is told politely and starts again at the menu
    renamed = re.sub(r"^  help:$", "  options:", original, flags=re.M).replace("goto: help", "goto: options")
    orders = flows_dir / "orders.yaml"  # it sends lost customers to main.help too
    orders_text = orders.read_text(encoding="utf-8")
    orders.write_text(orders_text.replace("main.help", "main.options"), encoding="utf-8")
    main.write_text(renamed.replace(OLD_MENU, NEW_MENU), encoding="utf-8")
    await eventually(lambda: engine.flows is not good, within=10)
    assert not engine.flows.has_state("main", "help")
    await post_webhook(client, text_notification(OTHER_PHONE, "wamid.O4", "asdf"))
    restart, menu = await _replies("wamid.O4", count=2)
    assert restart.message_content is not None and "our menu has changed" in restart.message_content
    assert menu.message_content is not None and NEW_MENU in menu.message_content
    other = await Conversation.get(customer_id=(await Customer.get(wa_id=OTHER_PHONE)).id)
    assert (other.flow, other.state) == ("main", "menu")


async def test_saved_texts_go_live_in_the_running_server(bot_client: BotFactory, tmp_path: Path) -> None:
    templates = tmp_path / "live-templates"
    shutil.copytree(REPO / "templates", templates)
    client = await bot_client(extra=_flows_section(0.1, None) + f"templates:\n  directory: {templates}\n")
    engine = client.app[ENGINE]
    await post_webhook(client, text_notification(PHONE, "wamid.T1", "language"))
    (menu,) = await _replies("wamid.T1")
    assert (
        menu.message_content is not None and "Choose your language / Elige tu idioma" in menu.message_content
    )

    started_with = engine.flows
    texts = templates / "texts" / "engine.yaml"
    texts.write_text(
        texts.read_text(encoding="utf-8").replace('"Choose your language"', '"Pick a language"'),
        encoding="utf-8",
    )
    await eventually(lambda: engine.flows is not started_with, within=10)
    await post_webhook(client, text_notification(PHONE, "wamid.T2", "language"))
    (menu,) = await _replies("wamid.T2")
    assert menu.message_content is not None and "Pick a language / Elige tu idioma" in menu.message_content


async def _order_text(
    client: TestClient[web.Request, web.Application], auth: dict[str, str], number: str
) -> str:
    """The status message a new order (status received) sends its customer, who wrote a moment ago."""
    response = await client.post("/api/orders", json=order_json(number), headers=auth)
    assert response.status == 201, await response.text()
    order = await Order.get(order_number=number)
    row = await Message.get(order_id=order.id)
    assert row.message_type == "text" and row.message_content is not None
    return row.message_content


async def test_saved_status_texts_go_live_and_a_bad_file_is_refused_with_its_line(
    bot_client: BotFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.reload")
    templates = tmp_path / "live-templates"
    shutil.copytree(REPO / "templates", templates)
    client = await bot_client(extra=_flows_section(0.1, None) + f"templates:\n  directory: {templates}\n")
    engine = client.app[ENGINE]
    auth = {"Authorization": f"Bearer {await create_key('shop-pos')}"}
    await post_webhook(client, text_notification(ORDER_PHONE, "wamid.S1", "hi"))  # the window is open
    await _replies("wamid.S1")
    assert "we have received your repair order R-1" in await _order_text(client, auth, "R-1")

    texts = templates / "texts" / "order_statuses.yaml"
    original = texts.read_text(encoding="utf-8")
    started_with = engine.flows
    edited = original.replace("we have received your repair order", "your repair order is in:", 1)
    texts.write_text(edited, encoding="utf-8")
    await eventually(lambda: engine.flows is not started_with, within=10)
    assert "your repair order is in: R-2" in await _order_text(client, auth, "R-2")

    # a misspelt placeholder: refused with the file, line and column; the last good texts keep serving
    good = engine.flows
    broken = edited.replace("is in: {order_number}", "is in: {order_numbr}", 1)
    texts.write_text(broken, encoding="utf-8")
    await eventually(lambda: "flows not reloaded" in caplog.text, within=10)
    line = next(n for n, text in enumerate(broken.splitlines(), 1) if "{order_numbr}" in text)
    assert f"{texts}:{line}:9: this text cannot use {{order_numbr}}" in caplog.text
    assert engine.flows is good
    assert "your repair order is in: R-3" in await _order_text(client, auth, "R-3")
