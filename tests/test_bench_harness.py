"""`make bench`'s harness still runs: a few seconds at a low rate, both bots answer every message.

Not a speed test (no timing is asserted): it proves that bench/compare.sh can start the fake Graph API,
the reference bot and `bot serve` from a clean checkout, and that the project's bot answers through it,
so a change that breaks the benchmark is found by `make test`, not by the next person measuring.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import REPO


@pytest.mark.slow
def test_the_benchmark_runs_and_the_bot_answers_every_message() -> None:
    env = {
        **os.environ,
        "BOT_SETTINGS": str(REPO / "tests" / "bench-settings.yaml"),
        "PYTHON": sys.executable,
        "SECONDS_PER_RATE": "2",
    }
    result = subprocess.run(
        ["bash", str(REPO / "bench" / "compare.sh"), "20"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.strip()}
    for bot in ("reference", "project"):
        assert bot in rows, result.stdout + result.stderr
        acked, lost = int(rows[bot][2]), int(rows[bot][7])
        assert acked == 40 and lost == 0, rows[bot]
