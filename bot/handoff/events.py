"""Live events for the technician panel: an in-process hub the WebSocket `/api/tech/ws` reads from.

Event shapes (JSON objects, one per WebSocket text frame):

- `{"type": "message", "phone": str, "conversation_id": int | null, "message": HistoryItem}`
  an inbound message in a conversation a person has, or a technician's outbound message when queued.
- `{"type": "status", "phone": str | null, "message_id": int | null, "wamid": str | null,
    "status": "sent" | "delivered" | "read" | "failed", "error": str | null}`
  an outbound message's delivery status changed (the outbox's send, or a status webhook).
- `{"type": "queue", "action": "waiting" | "claimed" | "transferred" | "released" | "apologized",
    "phone": str, "conversation_id": int, "handoff_id": int, "technician_id": int | null,
    "reason": str | null}`
  the queue or a chat's owner changed; refetch `GET /api/tech/queue` and `/api/tech/chats`.

- `{"type": "failed", "phone": str, "conversation_id": null, "message": HistoryItem}`
  an inbound message the bot gave up on after its attempts (parked: status "failed", `error` says why);
  admins list them with `GET /api/tech/failed`.

HistoryItem is what `GET /api/tech/chats/{phone}/messages` lists (see bot/http/technicians.py).
An event says what a commit made true: published inside a transaction (an `atomic()` block, see
bot/db/transactions.py), it goes out once that transaction commits, and never if it rolls back.
Events are best effort: a slow subscriber loses its oldest events rather than holding up the bot, and
the panel reloads the lists from the API when it (re)connects. With `bot serve --workers N` a hub
connected to the other processes (bot/peer_events.py) also sends them its committed events, and hands
its subscribers theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from functools import partial
from typing import Any

from bot.db.transactions import on_commit
from bot.peer_events import PeerLink

QUEUE_SIZE = 1000


class EventHub:
    """publish() never blocks and never fails; subscribers each get their own bounded queue."""

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._peers: PeerLink | None = None

    def connect(self, peers: PeerLink) -> None:
        """Send the other processes this one's events (those with a listener) from now on."""
        self._peers = peers
        peers.set_listening(bool(self._subscribers))

    @property
    def listening(self) -> bool:
        """Someone would hear an event: a subscriber here, or one in another process."""
        return bool(self._subscribers) or (self._peers is not None and self._peers.peers_listening)

    def publish(self, event: dict[str, Any]) -> None:
        """Now, or inside an `atomic()` block once it commits (dropped if it rolls back): a panel that
        refetches at once finds what the event announces, and never hears of what did not happen."""
        on_commit(partial(self._deliver, event))

    def _deliver(self, event: dict[str, Any]) -> None:
        self.receive(event)
        if self._peers is not None:
            self._peers.forward(event)

    def receive(self, event: dict[str, Any]) -> None:
        """To this process's subscribers only: an event committed here, or one another process sent."""
        for queue in list(self._subscribers):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(event)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.add(queue)
        if self._peers is not None:
            self._peers.set_listening(True)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._subscribers.discard(queue)
        if self._peers is not None:
            self._peers.set_listening(bool(self._subscribers))

    @contextlib.contextmanager
    def subscription(self) -> Iterator[asyncio.Queue[dict[str, Any]]]:
        queue = self.subscribe()
        try:
            yield queue
        finally:
            self.unsubscribe(queue)


def status_event(
    phone: str | None,
    wamid: str | None,
    status: str,
    error: str | None,
    message_id: int | None = None,
    customer_id: int | None = None,
) -> dict[str, Any]:
    """A delivery status change: from the outbox's send (`message_id` and `customer_id` known) or a
    status webhook (`phone`: the recipient's address, a phone or a BSUID)."""
    return {
        "type": "status",
        "phone": phone,
        "customer_id": customer_id,
        "message_id": message_id,
        "wamid": wamid,
        "status": status,
        "error": error,
    }
