"""Count the bot's round trips to SQLite, by statement: what the aiosqlite thread is asked to do.

    python bench/statements.py run OUT.json -- serve ARGS...   `bot ARGS` with every call counted,
                                                               written to OUT.json when it exits
    python bench/statements.py report OUT.json MESSAGES [N]    the N most frequent, per message

Every call that goes through aiosqlite's thread (a statement, an executemany, BEGIN, a commit) is one
round trip: a queue put, a thread switch and a wake-up of the event loop. Fewer of them per message is
the lever on that thread (bench/statements.sh runs it under load).
"""

from __future__ import annotations

import atexit
import json
import re
import sys
from collections import Counter
from typing import Any

WHITESPACE = re.compile(r"\s+")


def _key(fn: Any, args: tuple[Any, ...]) -> str:
    name = getattr(fn, "__name__", repr(fn))
    if args and isinstance(args[0], str):
        return f"{name}: {WHITESPACE.sub(' ', args[0])[:110]}"
    return name


def run(out: str, argv: list[str]) -> int:
    import aiosqlite.core

    calls: Counter[str] = Counter()
    rows: Counter[str] = Counter()
    original = aiosqlite.core.Connection._execute

    async def counted(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        key = _key(fn, args)
        calls[key] += 1
        if getattr(fn, "__name__", "") == "executemany" and len(args) > 1 and hasattr(args[1], "__len__"):
            rows[key] += len(args[1])
        return await original(self, fn, *args, **kwargs)

    aiosqlite.core.Connection._execute = counted  # type: ignore[method-assign]

    def dump() -> None:
        with open(out, "w", encoding="utf-8") as file:
            json.dump({"calls": calls, "rows": rows}, file)

    atexit.register(dump)
    from bot.cli.main import main

    return main(argv)


def report(path: str, messages: int, limit: int) -> None:
    with open(path, encoding="utf-8") as file:
        data = json.load(file)
    calls, rows = data["calls"], data["rows"]
    total = sum(calls.values())
    print(f"round trips: {total}, {total / messages:.2f} per message ({messages} messages)")
    for key, n in sorted(calls.items(), key=lambda item: -item[1])[:limit]:
        many = f"rows {rows[key]}" if rows.get(key) else ""
        print(f"{n:7d} {n / messages:6.2f}/msg {many:>10}  {key}")


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[1] == "run" and sys.argv[3] == "--":
        sys.exit(run(sys.argv[2], sys.argv[4:]))
    if len(sys.argv) > 3 and sys.argv[1] == "report":
        report(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 40)
        sys.exit(0)
    print(__doc__, file=sys.stderr)
    sys.exit(2)
