"""No HTTP client session outlives its server: one whose start-up fails (here: a database that does
not exist) is closed too, so the suite prints no "Unclosed client session" warnings."""

from __future__ import annotations

import gc
import warnings
from pathlib import Path

import pytest

from bot.app import create_app
from tests.helpers import POSTGRES_SERVER, AppFactory, make_settings


def _unclosed(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if "Unclosed" in str(w.message)]


async def test_a_server_whose_start_up_fails_leaves_no_session_open(
    serve_app: AppFactory, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, f"{POSTGRES_SERVER}/no_such_database", "http://127.0.0.1:9/v21.0")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with pytest.raises(OSError):  # refused or unknown: the server never starts
            await serve_app(create_app(settings))
        gc.collect()
    assert _unclosed(caught) == []
