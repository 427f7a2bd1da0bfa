"""A scripted fake of the Graph API's send endpoint: real HTTP on 127.0.0.1, answers chosen per recipient.

`POST /{version}/{phone_number_id}/messages` answers each recipient from its script, in turn: a list of
(HTTP status, body) pairs, where a dict body is sent as JSON and a str body as-is (an HTML error page, a
truncated answer ...). When a recipient's script is used up, or it has none, the answer is the real API's
success: `{"messaging_product": "whatsapp", "contacts": [...], "messages": [{"id": "wamid.X<n>"}]}`, with
n counting successes from 1. Every send is recorded in arrival order, failures too; `hold_answers()` keeps
the answers back (the sends are then in flight) until `release_answers()`. `faults()` makes unscripted
sends fail at random (5xx answers, and hangs that end in a 504), `expire_token()` answers every send
with error 190 until `renew_token()`. Mark-read requests are answered `{"success": true}` and kept apart.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections import defaultdict, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

GRAPH_VERSION = "v21.0"
BAD_TOKEN = {
    "error": {
        "message": "Error validating access token",
        "type": "OAuthException",
        "code": 190,
        "fbtrace_id": "AScriptedTrace",
    }
}

Reply = tuple[int, dict[str, Any] | str]
GATEWAY_TIMEOUT: Reply = (504, "<html><body><h1>504 Gateway Time-out</h1></body></html>")


@dataclass
class _Faults:
    fail_rate: float
    hang_rate: float
    hang_seconds: float
    failures: Iterator[Reply]
    rng: random.Random


@dataclass(frozen=True)
class GraphRequest:
    """One send as the fake saw it."""

    seq: int  # arrival order, from 1
    to: str  # the recipient without its '+'
    body: dict[str, Any]
    status: int  # the HTTP status answered
    wamid: str | None  # the id answered on success

    @property
    def text(self) -> str | None:
        """The text body of a text message, for telling sends apart."""
        text = self.body.get("text")
        return text.get("body") if isinstance(text, dict) else None


class ScriptedGraph:
    """Serve with `await graph.start()`; point an HttpTransport at `graph.base_url`."""

    def __init__(self, token: str = "bench-token") -> None:
        self._token = token
        self._scripts: defaultdict[str, deque[Reply]] = defaultdict(deque)
        self._wamids = itertools.count(1)
        self.requests: list[GraphRequest] = []
        self.mark_reads: list[str] = []
        self._faults: _Faults | None = None
        self._token_expired = False
        self._answering = asyncio.Event()
        self._answering.set()
        app = web.Application()
        app.router.add_post("/{version}/{phone_id}/messages", self._messages)
        self.server = TestServer(app)

    async def start(self) -> None:
        await self.server.start_server()

    async def close(self) -> None:
        await self.server.close()

    @property
    def base_url(self) -> str:
        return str(self.server.make_url(f"/{GRAPH_VERSION}"))

    def script(self, to: str, *replies: Reply) -> None:
        """Answer the next sends to `to` with these, in turn; then succeed."""
        self._scripts[to.lstrip("+")].extend(replies)

    def faults(
        self,
        failures: Sequence[Reply],
        fail_rate: float,
        hang_rate: float = 0.0,
        hang_seconds: float = 2.0,
        seed: int = 0,
    ) -> None:
        """From now on a send without a script fails with probability `fail_rate` (answered with
        `failures` in turn) or hangs with probability `hang_rate` (`hang_seconds`, then a 504: the message
        was not accepted, whether or not the client waited that long)."""
        self._faults = _Faults(
            fail_rate, hang_rate, hang_seconds, itertools.cycle(failures), random.Random(seed)
        )

    def expire_token(self) -> None:
        """Every send is answered 401 with error 190 (and recorded) until `renew_token()`."""
        self._token_expired = True

    def renew_token(self) -> None:
        self._token_expired = False

    def hold_answers(self) -> None:
        """Record sends from now on but keep their answers back until `release_answers()`."""
        self._answering.clear()

    def release_answers(self) -> None:
        self._answering.set()

    def sent_to(self, to: str) -> list[GraphRequest]:
        """Every send to one recipient, failed ones included, in arrival order."""
        return [request for request in self.requests if request.to == to.lstrip("+")]

    async def _messages(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self._token}":
            return web.json_response(BAD_TOKEN, status=401)
        body = json.loads(await request.read())
        if body.get("status") == "read":
            self.mark_reads.append(str(body.get("message_id")))
            return web.json_response({"success": True})
        to = str(body.get("to", "")).lstrip("+")
        script = self._scripts[to]
        seq = len(self.requests) + 1
        reply: Reply | None = (401, BAD_TOKEN) if self._token_expired else None
        if reply is None and script:
            reply = script.popleft()
        hang = 0.0
        if reply is None and self._faults is not None:
            draw = self._faults.rng.random()
            if draw < self._faults.fail_rate:
                reply = next(self._faults.failures)
            elif draw < self._faults.fail_rate + self._faults.hang_rate:
                reply, hang = GATEWAY_TIMEOUT, self._faults.hang_seconds
        if reply is not None:
            status, answer = reply
            self.requests.append(GraphRequest(seq, to, body, status, None))
            await self._answering.wait()
            await asyncio.sleep(hang)
            if isinstance(answer, str):
                return web.Response(status=status, text=answer, content_type="text/html")
            return web.json_response(answer, status=status)
        wamid = f"wamid.X{next(self._wamids)}"
        self.requests.append(GraphRequest(seq, to, body, 200, wamid))
        await self._answering.wait()
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": body.get("to"), "wa_id": to}],
                "messages": [{"id": wamid}],
            }
        )
