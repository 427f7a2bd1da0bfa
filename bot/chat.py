"""`bot chat`: be the customer in a terminal. Staff try a flow edit without a phone, WhatsApp or server.

Replies are drawn readably (buttons and list rows as numbered choices: type the number to tap one).
State lives in a SQLite file of its own, so a conversation continues across runs. When standard input is
not a terminal, each line is one customer turn and nothing but the replies is printed: it can be scripted.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TextIO, cast

from bot.db.config import sqlite_file, sqlite_url
from bot.engine.schema import parse_duration
from bot.settings import Settings
from bot.simulator import MEDIA_KINDS, ChoiceError, MediaKind, Reply, SimCustomer, Simulator
from bot.whatsapp.outbound import Buttons, ListMessage, Media, Reaction, Template, Text

# Short names of the errors a staff member is likely to meet here (the row's title can be a paragraph).
ERROR_NAMES = {
    131047: "Re-engagement message",
    131009: "Parameter value is not valid",
    131008: "Required parameter is missing",
    131026: "Message undeliverable",
    132000: "Number of parameters does not match",
    132001: "Template does not exist",
    100: "Invalid parameter",
}
HELP = """\
Type as the customer. A number picks that choice of the bot's last message.
  /wait 2h          let time pass (timeouts fire; after 24h only templates get through)
  /photo [caption]  send a photo; also /video, /document, /audio, /voice, /sticker, /location
  /reset            forget this customer's conversation and messages
  /help             this list
  /quit             leave (or Ctrl-D)"""


def default_chat_database(settings: Settings) -> str:
    """chat.db beside the shop's SQLite database (data/chat.db for PostgreSQL): never the real log."""
    shop = sqlite_file(settings.database_url)
    folder = shop.parent if shop is not None else (settings.base_dir / "data").resolve()
    return sqlite_url(folder / "chat.db")


# ---- drawing replies


def render_reply(reply: Reply) -> list[str]:
    """Lines for one reply: text as is, choices numbered, media and templates in brackets."""
    lines = render_message(reply)
    if reply.refused:
        name = ERROR_NAMES.get(reply.error_code or 0) or (reply.error_title or "").split(":")[0]
        return [f"✗ not delivered: {reply.error_code} {name}", *(f"    {line}" for line in lines)]
    if not reply.delivered:
        return [f"… still queued (will retry): {reply.error_code or ''} {reply.error_title or ''}".rstrip()]
    return lines


def render_message(reply: Reply) -> list[str]:
    message = reply.message
    if isinstance(message, Text):
        return message.body.splitlines() or [""]
    if isinstance(message, Buttons):
        lines = _framed(message.header, message.body, message.footer)
        return lines + [f"  {i}) {b.title}" for i, b in enumerate(message.buttons, 1)]
    if isinstance(message, ListMessage):
        lines = [*_framed(message.header, message.body, message.footer), f"  [{message.button}]"]
        number = 0
        for section in message.sections:
            if section.title:
                lines.append(f"  {section.title}")
            for row in section.rows:
                number += 1
                description = f" — {row.description}" if row.description else ""
                lines.append(f"    {number}) {row.title}{description}")
        return lines
    if isinstance(message, Media):
        kind = "voice" if message.voice else message.media_type
        source = message.link or f"media {message.media_id}"
        extra = message.caption or message.filename
        return [f"[{kind}] {source}" + (f" — {extra}" if extra else "")]
    if isinstance(message, Template):
        lines = [f"[template {message.name}] " + " | ".join(message.body_params)]
        return lines + [f"  {i}) {choice.title}" for i, choice in enumerate(reply.choices, 1)]
    if isinstance(message, Reaction):
        return [f"[reaction {message.emoji or '(removed)'}]"]
    return [str(message)]


def _framed(header: str | None, body: str, footer: str | None) -> list[str]:
    return [*([f"*{header}*"] if header else []), *body.splitlines(), *([f"_{footer}_"] if footer else [])]


def bot_lines(replies: Iterable[Reply], prefix: str = "bot: ") -> list[str]:
    lines: list[str] = []
    for reply in replies:
        for index, line in enumerate(render_reply(reply)):
            lines.append((prefix if index == 0 else " " * len(prefix)) + line)
    return lines


# ---- what the customer typed


@dataclass(frozen=True)
class Command:
    name: str
    argument: str


def parse_input(line: str) -> Command | None:
    """A /command, or None for a customer message."""
    stripped = line.strip()
    if not stripped.startswith("/") or stripped.startswith("//"):
        return None
    name, _, argument = stripped[1:].partition(" ")
    return Command(name.lower(), argument.strip())


async def turn(customer: SimCustomer, line: str) -> list[Reply]:
    """One customer turn: a number picks a choice of the last message when it offered some."""
    text = line.strip()
    if text.isdigit() and customer.choices and 1 <= int(text) <= len(customer.choices):
        return await customer.taps(int(text))
    return await customer.says(line.rstrip("\n"))


class ChatSession:
    """The loop's logic, apart from reading and printing, so it is the same for a TTY and a pipe."""

    def __init__(self, simulator: Simulator, customer: SimCustomer, out: Callable[[str], None]) -> None:
        self.simulator = simulator
        self.customer = customer
        self.out = out

    async def handle(self, line: str) -> bool:
        """Act on one input line; False when the user quits."""
        if not line.strip():
            return True
        command = parse_input(line)
        if command is None:
            self._show(await turn(self.customer, line))
            return True
        return await self._command(command)

    async def _command(self, command: Command) -> bool:
        name, argument = command.name, command.argument
        if name in ("quit", "exit", "q"):
            return False
        if name in ("help", "?"):
            self.out(HELP)
        elif name == "wait":
            try:
                delta = parse_duration(argument or "1m")
            except ValueError:
                self.out(f"(cannot wait '{argument}': write it like 30m, 2h or 1d)")
                return True
            self.out(f"(… {_human(delta)} later)")
            self._show(await self.customer.wait(delta))
        elif name == "reset":
            await self.simulator.forget(self.customer.phone)
            fresh = self.simulator.customer(self.customer.phone, self.customer.name, self.customer.language)
            self.customer = fresh
            self.out("(conversation forgotten: the next message starts anew)")
        elif name in ("photo", *MEDIA_KINDS):
            kind = cast(MediaKind, "image" if name == "photo" else name)
            self._show(await self.customer.sends_media(kind, caption=argument or None))
        elif name == "tap":
            try:
                self._show(await self.customer.taps(argument))
            except ChoiceError as exc:
                self.out(f"({exc})")
        else:
            self.out(f"(unknown command /{name}; /help lists them)")
        return True

    def _show(self, replies: list[Reply]) -> None:
        if not replies:
            self.out("(no reply)")
        for line in bot_lines(replies):
            self.out(line)


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    parts = [f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")) if v]
    return "".join(parts) or "0s"


async def run_chat(
    settings: Settings,
    *,
    phone: str,
    name: str | None,
    language: str | None,
    database_url: str | None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> int:
    source = stdin if stdin is not None else sys.stdin
    sink = stdout if stdout is not None else sys.stdout
    interactive = source.isatty()

    def out(text: str) -> None:
        print(text, file=sink, flush=True)

    database = database_url or default_chat_database(settings)
    async with Simulator(settings, database) as simulator:
        customer = simulator.customer(phone, name, language)
        session = ChatSession(simulator, customer, out)
        if interactive:
            with contextlib.suppress(ImportError):
                import readline  # noqa: F401  (line editing and history for input())
            who = f"{name or 'a customer'} (+{phone.lstrip('+')})"
            out(f"Chatting as {who}. Conversation kept in {sqlite_file(database) or database}")
            out("Type /help for commands, /quit to leave.")
        for line in bot_lines(await customer.start()):  # what came due while away (timeouts)
            out(line)
        while True:
            if interactive:
                try:
                    # blocking on purpose: nothing runs in the background between turns, and a thread
                    # blocked in input() would keep the process alive after Ctrl-C
                    line = input("you: ")  # noqa: ASYNC250
                except (EOFError, KeyboardInterrupt):
                    out("")
                    break
            else:
                line = source.readline()
                if not line:
                    break
            if not await session.handle(line):
                break
    return 0
