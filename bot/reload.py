"""Hot reload: saved flow files go live in the running server within seconds, without a restart.

`FlowWatcher` polls the files' contents (a SHA-256 of each; no new dependency, no OS watch API), waits
until two polls agree so a half-saved file is never read, then loads the whole set again. A set that does
not load is refused and its problems are logged once; the last good flows keep serving.

Contents, not modification time and size: two saves within the file system's time granularity (or a
copy that keeps the old time) with the same length, "Hello" then "Hallo", would otherwise go unnoticed.
The files are small and few, so reading them once a second costs next to nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from bot.engine import FlowLoadError, FlowSet
from bot.loops import Loop

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 1.0
FLOW_SUFFIXES = (".yaml", ".yml")

Snapshot = dict[Path, str]
"""file -> the SHA-256 of its contents, for every watched file."""


class FlowWatcher:
    """Polls `paths` (directories, not recursive) and reloads when their files change."""

    def __init__(
        self,
        paths: Sequence[Path],
        load: Callable[[], FlowSet],
        on_loaded: Callable[[FlowSet], None],
        interval: float = DEFAULT_INTERVAL_SECONDS,
        suffixes: Sequence[str] = FLOW_SUFFIXES,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.interval = interval
        self._load = load
        self._on_loaded = on_loaded
        self._suffixes = tuple(suffixes)
        self._current = self.snapshot()
        """What the last load attempt read (at first: what the server started with)."""
        self._pending: Snapshot | None = None
        """A change seen once; loaded when the next poll sees the same."""
        self._loop = Loop("flow-watcher", self.check, interval, wait_first=True)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        """End between two polls; a load in progress finishes first (see bot/loops.py)."""
        await self._loop.stop()

    def snapshot(self) -> Snapshot:
        """The watched files as they are now; a missing directory or file simply has no entries."""
        found: Snapshot = {}
        for directory in self.paths:
            try:
                entries = sorted(directory.iterdir())
            except OSError:
                continue
            for path in entries:
                if path.suffix not in self._suffixes:
                    continue
                with contextlib.suppress(OSError):  # gone between listing and reading: not there
                    if path.is_file():
                        found[path] = hashlib.sha256(path.read_bytes()).hexdigest()
        return found

    async def check(self) -> bool:
        """One poll. Returns True when it tried a load (files changed and two polls agreed)."""
        seen = await asyncio.to_thread(self.snapshot)  # reads the files: off the event loop
        if seen == self._current:
            self._pending = None
            return False
        if seen != self._pending:
            self._pending = seen  # maybe still being written: look again at the next poll
            return False
        changes = _describe_changes(self._current, seen)
        self._current, self._pending = seen, None  # a broken set is reported once, not every poll
        try:
            flows = await asyncio.to_thread(self._load)
            self._on_loaded(flows)
        except FlowLoadError as exc:
            problems = "\n".join(f"  {problem}" for problem in exc.problems)
            log.warning(
                "flows not reloaded; the last good flows keep serving (%s; %d problem%s):\n%s",
                changes,
                len(exc.problems),
                "" if len(exc.problems) == 1 else "s",
                problems,
            )
        except Exception:
            log.exception("flows not reloaded; the last good flows keep serving (%s)", changes)
        else:
            log.info(
                "flows reloaded (%s): the new flows are live: %s", changes, ", ".join(sorted(flows.flows))
            )
        return True


def _describe_changes(before: Snapshot, after: Snapshot) -> str:
    parts = [f"changed {p.name}" for p in sorted(after.keys() & before.keys()) if after[p] != before[p]]
    parts += [f"added {p.name}" for p in sorted(after.keys() - before.keys())]
    parts += [f"removed {p.name}" for p in sorted(before.keys() - after.keys())]
    return ", ".join(parts) or "no file changes"
