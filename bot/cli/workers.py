"""`bot serve --workers N`: N server processes on one port and one database, supervised.

The parent checks (or, with --migrate, applies) the schema once, in a child of its own, so the workers
never race to migrate; then it opens the listening socket (a port already taken fails here, once) and
forks the workers, which inherit it: each accepts connections from it with its own event loop, its own
pipeline and its own database pool. Nothing is shared in memory: what must hold across the workers
(a conversation moved by one at a time, a row claimed once, the business number's messages per second
and each customer's pacing) is held in the database (bot/db/claims.py, bot/db/buckets.py). On a SQLite
file the work is split by kind instead (bot/processes.py): worker 0 moves the messages and serves no
HTTP, workers 1 to N-1 serve HTTP and commit the webhooks; `--workers 1` there is one `bot serve`.

The parent only supervises: a worker that dies is started again (after 1 s, longer when it keeps dying
young), and whatever it had claimed comes back by itself (its transaction rolled back with its
connection, its outbox leases run out). SIGTERM or SIGINT stops the workers gracefully (each finishes
what it holds, as one `bot serve` does) and then the parent; a worker that exits with 2 (it refused to
start: settings, flows, schema) stops them all, since its siblings would refuse too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Literal

from aiohttp import web

from bot.app import ROLE
from bot.cli.event_loop import new_event_loop, settle_garbage_collector
from bot.db.claims import claims_for
from bot.db.process_turns import ProcessTurns
from bot.peer_events import PeerEvents, PeerLink
from bot.processes import Duty, ProcessRole, Wakes, duty_of
from bot.settings import Settings

log = logging.getLogger("bot.workers")

REFUSED = 2
"""A worker's exit code when it refused to start (the same as `bot serve`'s)."""
RESTART_SECONDS = (1.0, 30.0)
"""The first and the longest wait before a dead worker is started again."""
YOUNG_SECONDS = 10.0
"""A worker that dies younger than this waits twice as long as the one before it."""
STOP_SECONDS = 30.0
"""How long stopping workers may take before they are killed."""
POLL_SECONDS = 0.1


def serve_workers(
    settings: Settings,
    host: str,
    port: int,
    count: int,
    *,
    migrate: bool,
    build_app: Callable[[ProcessRole | None, PeerLink], web.Application],
) -> int:
    """Run `count` workers until stopped; returns the exit code."""
    code = _in_child(lambda: _prepare_schema(settings.database_url, migrate))
    if code:
        return code
    listening = socket.create_server((host, port), backlog=2048)
    listening.set_inheritable(True)
    log.info("serving on http://%s:%d with %d workers (pid %d supervises)", host, port, count, os.getpid())
    roles = _roles(count) if claims_for(settings.database_url).one_process else None
    peers = PeerEvents(count)
    try:
        return Supervisor(
            count,
            lambda index: _worker(
                index,
                listening,
                lambda: build_app(roles(index) if roles else None, peers.link(index)),
                settings.server.event_loop,
            ),
        ).run()
    finally:
        listening.close()
        peers.close()


def _roles(count: int) -> Callable[[int], ProcessRole]:
    """On one SQLite file: worker 0 the worker process, the others HTTP processes (bot/processes.py).
    The pipe and the shared turns are made here, before the fork, and outlive a worker's restart."""
    wakes, turns = Wakes(), ProcessTurns(count)

    def role(index: int) -> ProcessRole:
        duty = Duty.WORKERS if index == 0 else Duty.HTTP
        return ProcessRole(duty, wakes, turns.turn(index, first=duty is Duty.HTTP))

    return role


class Supervisor:
    """Forks `count` children running `target(index)`, restarts the ones that die, stops them all."""

    def __init__(self, count: int, target: Callable[[int], int]) -> None:
        self._count = count
        self._target = target
        self._children: dict[int, tuple[int, float]] = {}
        """pid -> (worker index, when it started)."""
        self._delays = [RESTART_SECONDS[0]] * count
        self._restart_at: dict[int, float] = {}
        """worker index -> when to start it again."""
        self._stopping = False
        self._stop_deadline = 0.0
        self._code = 0

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for index in range(self._count):
                self._start(index)
            while self._children or (self._restart_at and not self._stopping):
                self._reap()
                self._restart_due()
                if self._stopping and time.monotonic() > self._stop_deadline:
                    self._signal_all(signal.SIGKILL)
                time.sleep(POLL_SECONDS)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        log.info("all workers stopped")
        return self._code

    def _start(self, index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                code = self._target(index)
            except BaseException:
                log.exception("worker %d failed", index)
            finally:
                logging.shutdown()
                os._exit(code)
        self._children[pid] = (index, time.monotonic())
        log.info("worker %d started (pid %d)", index, pid)

    def _reap(self) -> None:
        while self._children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self._children.clear()
                return
            if pid == 0:
                return
            if pid not in self._children:
                continue
            index, started = self._children.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            how = f"was killed by signal {-code}" if code < 0 else f"exited with {code}"
            if self._stopping:
                log.info("worker %d (pid %d) %s", index, pid, how)
                continue
            if code == REFUSED:
                log.error("worker %d (pid %d) refused to start: stopping the others", index, pid)
                self._code = REFUSED
                self._begin_stop()
                continue
            young = time.monotonic() - started < YOUNG_SECONDS
            delay = self._delays[index] = (
                min(RESTART_SECONDS[1], self._delays[index] * 2) if young else RESTART_SECONDS[0]
            )
            log.error("worker %d (pid %d) %s; starting it again in %.0f s", index, pid, how, delay)
            self._restart_at[index] = time.monotonic() + delay

    def _restart_due(self) -> None:
        if self._stopping:
            self._restart_at.clear()
            return
        now = time.monotonic()
        for index, at in list(self._restart_at.items()):
            if at <= now:
                del self._restart_at[index]
                self._start(index)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        if not self._stopping:
            log.info("stopping the workers (%s)", signal.Signals(signum).name)
            self._begin_stop()

    def _begin_stop(self) -> None:
        self._stopping = True
        self._stop_deadline = time.monotonic() + STOP_SECONDS
        self._signal_all(signal.SIGTERM)

    def _signal_all(self, signum: int) -> None:
        for pid in self._children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)


def _worker(
    index: int,
    listening: socket.socket,
    build_app: Callable[[], web.Application],
    event_loop: Literal["uvloop", "asyncio"],
) -> int:
    """One worker: the whole server on the inherited socket, its log lines marked with its index."""
    formatter = logging.Formatter(f"%(asctime)s %(levelname)s [worker {index}] %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
    from bot.db.schema import SchemaError

    app = build_app()
    role = app.get(ROLE)

    async def ready(app: web.Application) -> None:  # after the database, the client and the workers
        duty = "" if role is None else f", {role.duty}"
        log.info("worker %d ready (pid %d%s)", index, os.getpid(), duty)

    app.on_startup.append(ready)
    settle_garbage_collector()
    try:
        if not duty_of(role).serves_http:
            _run_without_http(app, new_event_loop(event_loop))
            return 0
        web.run_app(
            app,
            loop=new_event_loop(event_loop),
            sock=listening,
            access_log=None,
            print=None,
            handle_signals=True,
        )
    except SchemaError as exc:
        print(exc, file=sys.stderr)
        return REFUSED
    return 0


def _run_without_http(app: web.Application, loop: asyncio.AbstractEventLoop) -> None:
    """The app's start-up and clean-up (database, client, loops) with no listening socket, until
    SIGTERM or SIGINT, as `web.run_app` runs them around its site."""
    asyncio.set_event_loop(loop)
    runner = web.AppRunner(app, handle_signals=True)

    async def until_stopped() -> None:
        await runner.setup()
        try:
            await asyncio.Event().wait()  # SIGTERM and SIGINT raise GracefulExit out of the loop
        finally:
            await runner.cleanup()

    task = loop.create_task(until_stopped())
    try:
        loop.run_until_complete(task)
    except (web.GracefulExit, KeyboardInterrupt):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(task)
    finally:
        loop.close()


def _prepare_schema(database_url: str, migrate: bool) -> int:
    from bot.db import close_db, init_db
    from bot.db.schema import SchemaError

    async def prepare() -> None:
        report = await init_db(database_url, migrate_schema=migrate)
        for line in report.lines() if report else ():
            log.info("database: %s", line)
        await close_db()

    try:
        asyncio.run(prepare())
    except SchemaError as exc:
        print(exc, file=sys.stderr)
        return REFUSED
    return 0


def _in_child(target: Callable[[], int]) -> int:
    """Run `target` in a child process and return its exit code: whatever it opens (an event loop, the
    ORM's connections) is gone before the workers are forked."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = target()
        except BaseException:
            log.exception("preparing the workers failed")
        finally:
            logging.shutdown()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
