"""What the bot holds while the benchmark runs: its resident memory and its queues, sampled.

  watch.py sample --pid PID --database URL --out FILE     every 0.25 s until killed, one JSON line each:
                                                          wall time, the RSS (MB) of PID and of each of its
                                                          child processes (`bot serve --workers N`), their
                                                          CPU seconds so far, and the inbound rows pending
                                                          and outbound rows queued
  watch.py recreate --database URL                        drop and create a PostgreSQL database (a fresh
                                                          one for each benchmark run)
  watch.py report --samples FILE --start T0 --end T1      for one step of load (wall times from load.py):
                                                          the largest RSS of one process and of all of them
                                                          (and their PSS: shared pages counted once)
                                                          between T0 and now, and how long after T1 both
                                                          queues were first empty (drain), and the CPU
                                                          seconds the bot used from T0 to then

Reads the database directly (sqlite3, or asyncpg for PostgreSQL), never through the bot, so a bot that is
behind cannot slow its own measurement; counting uses the delivery_status index.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import time
from pathlib import Path

INTERVAL = 0.25
COUNT = (
    "SELECT"
    " (SELECT count(*) FROM message WHERE delivery_status = 'pending' AND message_direction = 'inbound'),"
    " (SELECT count(*) FROM message WHERE delivery_status = 'queued' AND message_direction = 'outbound')"
)


def _kilobytes_mb(path: str, key: str) -> float | None:
    """A `key:  N kB` line of a /proc file, in MB (None once the process is gone)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def rss_mb(pid: int) -> float | None:
    return _kilobytes_mb(f"/proc/{pid}/status", "VmRSS:")


def pss_mb(pid: int) -> float | None:
    """The proportional set size: the process's private pages and its share of the pages it shares
    (forked workers share what the parent had imported), so the PSS of processes adds up to what they
    hold together, which their RSS overstates."""
    return _kilobytes_mb(f"/proc/{pid}/smaps_rollup", "Pss:")


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User and system CPU time the process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


async def sample(pid: int, database: str, out: Path) -> None:
    if database.startswith("sqlite://"):
        path = database.removeprefix("sqlite://").split("?", 1)[0]

        async def count() -> tuple[int, int]:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as connection:
                return tuple(connection.execute(COUNT).fetchone())  # type: ignore[return-value]
    else:
        import asyncpg

        connection = await asyncpg.connect(database.replace("postgres://", "postgresql://", 1))

        async def count() -> tuple[int, int]:
            return tuple(await connection.fetchrow(COUNT))  # type: ignore[return-value]

    with out.open("a", encoding="utf-8") as file:
        while True:
            started = time.time()
            processes = [pid, *children(pid)]
            rss = [r for r in (rss_mb(p) for p in processes) if r is not None]
            try:
                pending, queued = await count()
            except Exception:  # the database not there yet, or locked for a moment
                pending = queued = None
            cpu = sum(c for c in (cpu_seconds(p) for p in processes) if c is not None)
            pss = sum(p for p in (pss_mb(p) for p in processes) if p is not None)
            line = {"t": round(started, 3), "rss": [round(r, 1) for r in rss], "pss": round(pss, 1)}
            line["cpu"] = round(cpu, 2)
            line["pending"] = pending
            line["queued"] = queued
            file.write(json.dumps(line) + "\n")
            file.flush()
            await asyncio.sleep(max(0.0, INTERVAL - (time.time() - started)))


def report(samples: Path, start: float, end: float) -> dict[str, float | int | str | None]:
    lines = [json.loads(line) for line in samples.read_text().splitlines() if line.strip()]
    during = [line for line in lines if line["t"] >= start and line["rss"]]
    after = [line for line in lines if line["t"] >= end and line["pending"] is not None]
    drained = next((line for line in after if line["pending"] == 0 and line["queued"] == 0), None)
    left = after[-1] if after else None
    before = [line for line in lines if line["t"] < start]
    until = drained or left
    cpu = until["cpu"] - before[-1]["cpu"] if before and until else None
    return {
        "cpu_s": round(cpu, 2) if cpu is not None else None,
        "rss_mb": round(max((max(line["rss"]) for line in during), default=0.0)),
        "rss_total_mb": round(max((sum(line["rss"]) for line in during), default=0.0)),
        "pss_total_mb": round(max((line.get("pss", 0.0) for line in during), default=0.0)),
        "drain_s": round(drained["t"] - end, 2) if drained else None,
        "left": None if drained or left is None else f"{left['pending']}+{left['queued']}",
    }


async def recreate(database: str) -> None:
    import asyncpg

    url = database.replace("postgres://", "postgresql://", 1)
    base, _, name = url.rpartition("/")
    name = name.split("?", 1)[0]
    if not name.replace("_", "").isalnum():
        raise SystemExit(f"not a database name for the benchmark: {name!r}")
    connection = await asyncpg.connect(f"{base}/postgres")
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    sampler = commands.add_parser("sample")
    sampler.add_argument("--pid", type=int, required=True)
    sampler.add_argument("--database", required=True)
    sampler.add_argument("--out", type=Path, required=True)
    reporter = commands.add_parser("report")
    reporter.add_argument("--samples", type=Path, required=True)
    reporter.add_argument("--start", type=float, required=True)
    reporter.add_argument("--end", type=float, required=True)
    commands.add_parser("recreate").add_argument("--database", required=True)
    a = parser.parse_args()
    if a.command == "recreate":
        asyncio.run(recreate(a.database))
        return
    if a.command == "sample":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(sample(a.pid, a.database, a.out))
        return
    print(json.dumps(report(a.samples, a.start, a.end)))


if __name__ == "__main__":
    main()
