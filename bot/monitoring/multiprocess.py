"""Counters shared by several server processes (`bot serve --workers N`): prometheus-client's
multiprocess mode, which each process must find on before it first imports prometheus-client (the
mode is chosen at that import). `prepare(workers)` is for the parent, before it loads the app and
forks: it gives the workers a folder of their own, emptied of an earlier run's files, unless
`PROMETHEUS_MULTIPROC_DIR` names one already. This module imports nothing of prometheus-client.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"


class TooLate(RuntimeError):
    """prometheus-client was imported in single-process mode: the workers' counters would not add up."""


def prepare(workers: int) -> Path | None:
    """With more than one worker: the folder their counters go to (made, or emptied), set in the
    environment the workers inherit. None with one worker and no folder asked for."""
    named = os.environ.get(ENV)
    if workers <= 1 and not named:
        return None
    if "prometheus_client.values" in sys.modules and not named:
        raise TooLate(f"set {ENV} before the app is loaded (prometheus-client is imported already)")
    folder = Path(named) if named else Path(tempfile.mkdtemp(prefix="bot-metrics-"))
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):  # an earlier run's counters would be added to this one's
        stale.unlink()
    os.environ[ENV] = str(folder)
    return folder
