"""The panel's live events between the processes of `bot serve --workers N` on one machine.

An event is published in the process where its commit happened (bot/handoff/events.py), but the
technician's WebSocket may be held by another: on one SQLite file worker 0 handles every customer
message and sends every reply while the HTTP processes hold the sockets, and on PostgreSQL each worker
does everything and holds its own sockets. So after its local delivery each committed event also goes,
as one JSON datagram, to every other process that has a WebSocket listening, which delivers it to its
own subscribers as if it had happened there.

The supervisor makes the sockets before the fork (an AF_UNIX datagram socket pair per process, which
outlives a process's restart) and a shared byte per process that says whether it has a listener, so a
process with nobody watching is sent nothing. A datagram is sent whole or not at all: a peer whose
buffer is full (busy, or dead until its restart) misses the event, as a slow WebSocket does in one
process, and the panel reloads its lists when it reconnects. An event over MAX_EVENT_BYTES is not
forwarded (the peer's panel shows it at its next refresh). Several machines on one PostgreSQL database
do not share their events.
"""

from __future__ import annotations

import asyncio
import json
import logging
import mmap
import socket
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

MAX_EVENT_BYTES = 64 * 1024
"""The largest event forwarded (a message event holds the message's text: 4,096 characters at most)."""

Deliver = Callable[[dict[str, Any]], None]


class PeerEvents:
    """The sockets and the listening bytes of `count` processes, made before they are forked."""

    def __init__(self, count: int) -> None:
        self._pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(count)]
        for receiving, sending in self._pairs:
            receiving.setblocking(False)
            sending.setblocking(False)
        self._listening = mmap.mmap(-1, count)  # anonymous and MAP_SHARED: forked children see writes

    def link(self, index: int) -> PeerLink:
        """Process `index`'s end: it receives on its own socket and sends to the others'."""
        self._listening[index] = 0  # a process started again has no listener yet
        others = {peer: pair[1] for peer, pair in enumerate(self._pairs) if peer != index}
        return PeerLink(index, self._pairs[index][0], others, self._listening)

    def close(self) -> None:
        for receiving, sending in self._pairs:
            receiving.close()
            sending.close()


class PeerLink:
    """One process's link to the others."""

    def __init__(
        self,
        index: int,
        receiving: socket.socket,
        others: dict[int, socket.socket],
        listening: mmap.mmap,
    ) -> None:
        self._index = index
        self._receiving = receiving
        self._others = others
        self._listening = listening

    @property
    def peers_listening(self) -> bool:
        """Whether another process has a WebSocket listening (then events are worth building here)."""
        return any(self._listening[peer] for peer in self._others)

    def set_listening(self, listening: bool) -> None:
        self._listening[self._index] = 1 if listening else 0

    def forward(self, event: dict[str, Any]) -> None:
        """To every other process with a listener; never blocks, never fails."""
        targets = [sending for peer, sending in self._others.items() if self._listening[peer]]
        if not targets:
            return
        data = json.dumps(event, separators=(",", ":"), default=str).encode()
        if len(data) > MAX_EVENT_BYTES:
            log.debug("a %s event of %d bytes is not forwarded", event.get("type"), len(data))
            return
        for sending in targets:
            try:
                sending.send(data)
            except OSError:  # full (a busy or dead peer): it misses this one
                continue

    def listen(self, deliver: Deliver) -> Callable[[], None]:
        """Hand every event the others forward to `deliver`; returns the way to stop."""
        loop = asyncio.get_running_loop()
        descriptor = self._receiving.fileno()

        def readable() -> None:
            while True:
                try:
                    data = self._receiving.recv(MAX_EVENT_BYTES)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    log.warning("reading the other processes' events failed", exc_info=True)
                    return
                try:
                    event = json.loads(data)
                except ValueError:
                    continue
                if isinstance(event, dict):
                    deliver(event)

        def stop() -> None:
            loop.remove_reader(descriptor)

        loop.add_reader(descriptor, readable)
        return stop
