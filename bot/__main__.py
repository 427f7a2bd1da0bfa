"""The `bot` command: serve, flows check, db init, replay."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from bot.settings import Settings, SettingsError, load_settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("transitions").setLevel(logging.WARNING)  # it logs every state change at INFO
    try:
        settings = load_settings(args.settings)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    handler = args.handler
    result: int = handler(settings, args)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bot", description="WhatsApp Business conversation engine")
    parser.add_argument("--settings", help="settings file (default: $BOT_SETTINGS or ./settings.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG (phone numbers, texts)")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the webhook server and its workers")
    serve.add_argument("--host", help="default: server.host in settings.yaml")
    serve.add_argument("--port", type=int, help="default: server.port in settings.yaml")
    serve.set_defaults(handler=_serve)

    flows = commands.add_parser("flows", help="work with the YAML flows")
    flow_commands = flows.add_subparsers(dest="flows_command", required=True)
    check = flow_commands.add_parser("check", help="validate every flow; print file:line:column: reason")
    check.add_argument("directory", nargs="?", type=Path, help="default: flows.directory in settings")
    check.set_defaults(handler=_flows_check)

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("init", help="create the database and any missing tables").set_defaults(
        handler=_db_init
    )

    replay = commands.add_parser("replay", help="re-run stored inbound messages through the engine")
    replay.add_argument(
        "--since", required=True, type=_timestamp, help="ISO 8601 time, e.g. 2026-11-25T09:00"
    )
    replay.add_argument("--phone", help="only this customer")
    replay.add_argument(
        "--resend",
        action="store_true",
        help="hand the messages to the inbox again: the conversation moves on and the replies are sent",
    )
    replay.set_defaults(handler=_replay)
    return parser


def _timestamp(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from bot.app import create_app
    from bot.engine import FlowLoadError

    try:
        app = create_app(settings)
    except FlowLoadError as exc:
        print("The flows have problems; the server did not start:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    web.run_app(
        app,
        host=args.host or settings.server.host,
        port=args.port or settings.server.port,
        access_log=None,
        print=lambda text: logging.getLogger("bot").info("%s", text.strip()),
    )
    return 0


def _flows_check(settings: Settings, args: argparse.Namespace) -> int:
    from bot.engine import check_flows

    directory = args.directory or settings.flows_dir
    problems = check_flows(directory)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) in {directory}", file=sys.stderr)
        return 1
    print(f"{directory}: all flows are valid")
    return 0


def _db_init(settings: Settings, args: argparse.Namespace) -> int:
    from bot.db import close_db, init_db

    async def run() -> None:
        await init_db(settings.database_url)
        await close_db()

    asyncio.run(run())
    print(f"database ready: {settings.database.url}")
    return 0


def _replay(settings: Settings, args: argparse.Namespace) -> int:
    from bot.replay import replay

    return asyncio.run(replay(settings, since=args.since, phone=args.phone, resend=args.resend))


if __name__ == "__main__":
    raise SystemExit(main())
