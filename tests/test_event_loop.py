"""The event loop `bot serve` runs on (uvloop where installed, asyncio's own by choice or without it)
and the garbage collector's settings it starts with."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli.event_loop import GC_FIRST_GENERATION, new_event_loop, settle_garbage_collector
from bot.settings import SettingsError, load_settings
from tests.helpers import REPO


def test_the_shipped_settings_serve_on_uvloop() -> None:
    assert load_settings(REPO / "settings.yaml", environ={}).server.event_loop == "uvloop"


def test_an_unknown_event_loop_is_refused_with_its_key(tmp_path: Path) -> None:
    bad = tmp_path / "settings.yaml"
    bad.write_text("server:\n  event_loop: tokio\n")
    with pytest.raises(SettingsError, match=r"server\.event_loop"):
        load_settings(bad, environ={})


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop does not build on Windows")
def test_uvloop_runs_the_same_coroutines() -> None:
    import uvloop

    loop = new_event_loop("uvloop")
    try:
        assert isinstance(loop, uvloop.Loop)
        assert loop.run_until_complete(asyncio.sleep(0, result="answered")) == "answered"
    finally:
        loop.close()


def test_asyncio_by_choice_and_without_uvloop(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    chosen = new_event_loop("asyncio")
    chosen.close()
    assert type(chosen).__module__.startswith("asyncio")
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now fails, as where it is missing
    with caplog.at_level(logging.INFO, logger="bot.cli.event_loop"):
        fallback = new_event_loop("uvloop")
    fallback.close()
    assert type(fallback).__module__.startswith("asyncio")
    assert "uvloop is not installed here" in caplog.text


@pytest.fixture
def collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_start_up_objects_leave_the_collections_and_the_young_pass_waits_longer(collector: None) -> None:
    gc.unfreeze()
    settle_garbage_collector()
    assert gc.get_freeze_count() > 0  # the modules, models and flows loaded so far
    assert gc.get_threshold()[0] == GC_FIRST_GENERATION
