"""The `bot` command: argument parsing, and each command handed to its module in bot/cli/ (or the server)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from aiohttp import web

from bot.settings import Settings, SettingsError, load_settings

MAX_BATCH_SIZE = 100_000


def _batch_size(text: str) -> int:
    """A batch of 1 to MAX_BATCH_SIZE rows: 0 would never finish, a huge one would hold the inbox."""
    try:
        size = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= size <= MAX_BATCH_SIZE:
        raise argparse.ArgumentTypeError(f"must be 1 to {MAX_BATCH_SIZE:,}, not {size}")
    return size


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("transitions").setLevel(logging.WARNING)  # it logs every state change at INFO
    from bot.monitoring.logs import mask_handlers

    mask_handlers()  # a whole phone number never leaves at INFO or above, whoever logs it
    if not getattr(args, "verbose", False):  # "Tortoise-ORM startup/shutdown" around every command
        logging.getLogger("tortoise").setLevel(logging.WARNING)
    if args.command == "doctor":  # reading the settings is its first check
        return _doctor(args)
    if args.command == "keys" and args.keys_command == "generate":  # needs no settings
        return _keys_generate(args)
    try:
        settings = load_settings(args.settings)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    _structured_logs(settings, verbose=getattr(args, "verbose", False))
    handler = args.handler
    try:
        result: int = handler(settings, args)
    except Exception as exc:
        from bot.db.schema import SchemaError  # loaded here: commands without a database stay quick
        from bot.engine import FlowLoadError

        if isinstance(exc, FlowLoadError):  # a command that runs the flows (chat, replay, ...)
            print("The flows, templates or texts have problems:", file=sys.stderr)
            for problem in exc.problems:
                print(f"  {problem}", file=sys.stderr)
            return 2
        if not isinstance(exc, SchemaError):
            raise
        print(exc, file=sys.stderr)  # behind (or ahead of) the code: one line naming the command
        return 2
    return result


def _structured_logs(settings: Settings, *, verbose: bool) -> None:
    """`logging.json` (auto: JSON lines when stderr is not a terminal) and `logging.level`; -v still
    means DEBUG."""
    from bot.monitoring.logs import use_json, wants_json

    use_json(wants_json(settings.logging.json_))
    if not verbose:
        logging.getLogger().setLevel(settings.logging.level)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bot", description="WhatsApp Business conversation engine")
    parser.add_argument("--settings", help="settings file (default: $BOT_SETTINGS or ./settings.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG (phone numbers, texts)")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the webhook server and its workers")
    serve.add_argument("--host", help="default: server.host in settings.yaml")
    serve.add_argument("--port", type=int, help="default: server.port in settings.yaml")
    serve.add_argument(
        "--migrate",
        action="store_true",
        help="apply pending database migrations at start-up (without it, a schema that is behind stops "
        "start-up with the command to run)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes on the one port (default 1). On PostgreSQL each does everything and they "
        "share the conversations and the throughput limits through the database; on SQLite one moves "
        "the messages and the other N-1 serve HTTP",
    )
    serve.set_defaults(handler=_serve)

    commands.add_parser(
        "doctor",
        help="check, in order, whether this installation is ready for real customers; exit 0 when it is",
        description="Settings, database, flows and templates, then (with credentials) the access token "
        "and phone number, the webhook subscription and the templates' approval at Meta: one line each, "
        "with what to do when it fails. Changes nothing.",
    )

    whatsapp = commands.add_parser("whatsapp", help="set up the WhatsApp Business account")
    whatsapp_commands = whatsapp.add_subparsers(dest="whatsapp_command", required=True)
    subscribe = whatsapp_commands.add_parser(
        "subscribe", help="subscribe the app to the WhatsApp Business Account's webhooks"
    )
    subscribe.add_argument(
        "--callback-url", help="send the account's webhooks here instead of the app's callback URL (https)"
    )
    subscribe.add_argument(
        "--verify-token",
        help="the token Meta sends to --callback-url to check it (default: $WHATSAPP_WEBHOOK_VERIFY_TOKEN)",
    )
    subscribe.set_defaults(handler=_whatsapp_subscribe)
    profile = whatsapp_commands.add_parser(
        "profile", help="show the business profile at Meta; --set sends the one shop: in settings.yaml sets"
    )
    profile.add_argument("--set", action="store_true", help="set about, address, description, email, ...")
    profile.set_defaults(handler=_whatsapp_profile)

    flows = commands.add_parser("flows", help="work with the YAML flows")
    flow_commands = flows.add_subparsers(dest="flows_command", required=True)
    check = flow_commands.add_parser("check", help="validate every flow; print file:line:column: reason")
    check.add_argument("directory", nargs="?", type=Path, help="default: flows.directory in settings")
    check.set_defaults(handler=_flows_check)
    flows_test = flow_commands.add_parser(
        "test", help="run the conversation tests in DIR/tests/*.yaml against DIR's flows"
    )
    flows_test.add_argument("directory", nargs="?", type=Path, help="default: flows.directory in settings")
    flows_test.set_defaults(handler=_flows_test)
    graph = flow_commands.add_parser(
        "graph", help="draw the flows' states and transitions as a Mermaid (or Graphviz dot) diagram"
    )
    graph.add_argument(
        "flow", nargs="?", help="a flow name, or a flows directory or .yaml file (default: every flow)"
    )
    graph.add_argument("--dir", dest="directory", type=Path, help="default: flows.directory in settings")
    graph.add_argument(
        "--format", choices=("mermaid", "dot", "json"), default="mermaid", help="default: mermaid"
    )
    graph.set_defaults(handler=_flows_graph)

    chat = commands.add_parser(
        "chat",
        help="be a customer in the terminal: the real engine, no WhatsApp, no server",
        description="Type as a customer and see the bot's replies; a number picks a choice. When stdin "
        "is not a terminal, each line is one customer turn (scriptable). /help lists the commands.",
    )
    chat.add_argument("--phone", default="15550009999", help="the customer's number (default: 15550009999)")
    chat.add_argument("--name", help="the customer's WhatsApp profile name")
    chat.add_argument("--lang", help="the customer's language (en, es, zh ...), as if they had chosen it")
    chat.add_argument(
        "--database",
        help="where the simulated conversation is kept (default: chat.db beside the shop's SQLite "
        "database, e.g. data/chat.db; never the shop's real message log)",
    )
    chat.set_defaults(handler=_chat)

    templates = commands.add_parser("templates", help="the WhatsApp message templates in templates/")
    template_commands = templates.add_subparsers(dest="templates_command", required=True)
    template_commands.add_parser(
        "sync", help="load templates/ into the database and compare it with Meta's approved templates"
    ).set_defaults(handler=_templates_sync)

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser(
        "migrate",
        aliases=["init"],
        help="create the database or bring its schema up to date: apply the pending migrations "
        "(a database made before migrations is adopted in place); prints what it did",
    ).set_defaults(handler=_db_migrate)
    makemigrations = db_commands.add_parser(
        "makemigrations",
        help="for developers: write bot/db/migrations/NNNN_NAME.py for the models' changes since the "
        "last migration",
    )
    makemigrations.add_argument("--name", help="what the migration does, e.g. add_technician_email")
    makemigrations.add_argument(
        "--check", action="store_true", help="write nothing; list the unmigrated changes, exit 1 if any"
    )
    makemigrations.set_defaults(handler=_db_makemigrations)

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

    apikeys = commands.add_parser("apikeys", help="API keys for the orders API")
    apikey_commands = apikeys.add_subparsers(dest="apikeys_command", required=True)
    apikeys_add = apikey_commands.add_parser("add", help="create a key; prints only the key, once")
    apikeys_add.add_argument("name", help="who uses it, e.g. shop-pos")
    apikeys_add.set_defaults(handler=_apikeys_add)
    apikeys_revoke = apikey_commands.add_parser("revoke", help="revoke a key: it stops working at once")
    apikeys_revoke.add_argument("name")
    apikeys_revoke.set_defaults(handler=_apikeys_revoke)
    apikey_commands.add_parser(
        "list", help="every key: name, created, last used, revoked (never the key itself)"
    ).set_defaults(handler=_apikeys_list)

    technicians = commands.add_parser("technicians", help="the people who answer handed-off chats")
    technician_commands = technicians.add_subparsers(dest="technicians_command", required=True)
    technicians_add = technician_commands.add_parser(
        "add", help="create a technician; prints only their login token, once"
    )
    technicians_add.add_argument("name")
    technicians_add.add_argument("--role", choices=["technician", "admin"], default="technician")
    technicians_add.add_argument("--phone", help="their phone number (optional)")
    technicians_add.set_defaults(handler=_technicians_add)
    technician_commands.add_parser(
        "list", help="every technician: id, name, role, phone, active, created"
    ).set_defaults(handler=_technicians_list)
    technicians_revoke = technician_commands.add_parser(
        "revoke", help="deactivate a technician: their token and panel sessions stop working at once"
    )
    technicians_revoke.add_argument("name")
    technicians_revoke.set_defaults(handler=_technicians_revoke)

    keys = commands.add_parser("keys", help="the encryption keys of customers' data at rest")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    key_commands.add_parser(
        "generate",
        help="print a new master key for BOT_ENCRYPTION_KEYS (base64, 32 bytes); its id goes to stderr",
    )
    keys_rotate = key_commands.add_parser(
        "rotate",
        help="re-wrap every customer's data key under the first key of BOT_ENCRYPTION_KEYS, in batches "
        "(stop it any time: a new run skips the keys already done)",
    )
    keys_rotate.add_argument("--batch-size", type=_batch_size, default=500, help="data keys per transaction")
    keys_rotate.set_defaults(handler=_keys_rotate)
    keys_encrypt = key_commands.add_parser(
        "encrypt-existing",
        help="encrypt the plaintext a database from before encryption holds, in batches (stop it any "
        "time: a new run skips what is encrypted)",
    )
    keys_encrypt.add_argument("--batch-size", type=_batch_size, default=500, help="rows per transaction")
    keys_encrypt.set_defaults(handler=_keys_encrypt_existing)

    retention = commands.add_parser("retention", help="deleting what is older than privacy.retention_days")
    retention_commands = retention.add_subparsers(dest="retention_command", required=True)
    retention_run = retention_commands.add_parser(
        "run",
        help="delete messages, media files and finished conversations older than privacy.retention_days "
        "now (bot serve does it daily)",
    )
    retention_run.add_argument("--dry-run", action="store_true", help="count what would go; delete nothing")
    retention_run.set_defaults(handler=_retention_run)
    erase = commands.add_parser(
        "erase",
        help="forget a customer: their data key, messages, media files, conversation and reminders; "
        "appointments and orders stay without their personal details; an audit row says who did it",
    )
    erase.add_argument("phone", help="their phone number (digits, + and spaces allowed) or WhatsApp user ID")
    erase.add_argument("--yes", action="store_true", help="do not ask first (it asks only on a terminal)")
    erase.set_defaults(handler=_erase)
    export = commands.add_parser(
        "export", help="print everything held about a customer as JSON, decrypted (the right of access)"
    )
    export.add_argument("phone", help="their phone number (digits, + and spaces allowed) or WhatsApp user ID")
    export.set_defaults(handler=_export)

    orders = commands.add_parser("orders", help="repair orders")
    order_commands = orders.add_subparsers(dest="orders_command", required=True)
    orders_import = order_commands.add_parser(
        "import", help="import a CSV export (header row: the API's field names); notifies like the API"
    )
    orders_import.add_argument("file", type=Path)
    orders_import.set_defaults(handler=_orders_import)

    costs = commands.add_parser(
        "costs", help="what WhatsApp cost in a month: total, by category, template and flow, free messages"
    )
    costs.add_argument("month", help="YYYY-MM, e.g. 2026-11")
    costs.set_defaults(handler=_costs)
    stats = commands.add_parser(
        "stats", help="the shop's numbers as tables: messages, delivery, failures, handoffs, reply times"
    )
    stats.add_argument("--from", dest="first", type=date.fromisoformat, help="first shop day, YYYY-MM-DD")
    stats.add_argument("--to", dest="end", type=date.fromisoformat, help="the day after the last (exclusive)")
    stats.add_argument("--group", choices=("day", "week", "month"), default="day", help="default: day")
    stats.set_defaults(handler=_stats)

    reminders = commands.add_parser("reminders", help="appointment reminders")
    reminder_commands = reminders.add_subparsers(dest="reminders_command", required=True)
    reminders_due = reminder_commands.add_parser(
        "due", help="list the reminders due in the next HOURS and what would happen to each; sends nothing"
    )
    reminders_due.add_argument("--hours", type=float, default=48, help="how far ahead to look (default: 48)")
    reminders_due.set_defaults(handler=_reminders_due)
    return parser


def _timestamp(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from bot.monitoring.multiprocess import prepare

    prepare(args.workers)  # before the app loads prometheus-client: the workers' counters add up
    from bot.app import create_app
    from bot.cli.event_loop import new_event_loop, settle_garbage_collector
    from bot.crypto import KeyConfigError
    from bot.engine import FlowLoadError
    from bot.shop_texts import ShopSettingsMissing

    if args.workers < 1:
        print("bot serve --workers takes 1 or more", file=sys.stderr)
        return 2
    try:
        app = create_app(settings, migrate=args.migrate)
    except FlowLoadError as exc:
        print("The flows, templates or texts have problems; the server did not start:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except ShopSettingsMissing as exc:
        print("settings.yaml lacks what the texts need; the server did not start:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except KeyConfigError as exc:
        print(f"{exc}\nThe server did not start.", file=sys.stderr)
        return 2
    host, port = args.host or settings.server.host, args.port or settings.server.port
    if args.workers > 1:
        from bot.cli.workers import serve_workers

        return serve_workers(
            settings,
            host,
            port,
            args.workers,
            migrate=args.migrate,
            build_app=lambda role, peers: create_app(settings, role=role, peers=peers),
        )
    settle_garbage_collector()
    web.run_app(
        app,
        loop=new_event_loop(settings.server.event_loop),
        host=host,
        port=port,
        access_log=None,
        print=lambda text: logging.getLogger("bot").info("%s", text.strip()),
    )
    return 0


def _keys_generate(args: argparse.Namespace) -> int:
    import base64

    from bot.crypto import generate_master_key, key_id

    key = generate_master_key()
    print(key)
    print(f"key id {key_id(base64.b64decode(key))}: put it first in BOT_ENCRYPTION_KEYS", file=sys.stderr)
    return 0


def _keys_rotate(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli.keys import keys_rotate

    return asyncio.run(keys_rotate(settings, args.batch_size))


def _keys_encrypt_existing(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli.keys import keys_encrypt_existing

    return asyncio.run(keys_encrypt_existing(settings, args.batch_size))


def _doctor(args: argparse.Namespace) -> int:
    from bot.cli.doctor import run_doctor

    logging.getLogger().setLevel(logging.DEBUG if args.verbose else logging.ERROR)  # the check lines only
    return asyncio.run(run_doctor(args.settings))


def _whatsapp_subscribe(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli.whatsapp import subscribe

    return asyncio.run(subscribe(settings, args.callback_url, args.verify_token))


def _whatsapp_profile(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli.whatsapp import profile

    return asyncio.run(profile(settings, args.set))


def _flows_check(settings: Settings, args: argparse.Namespace) -> int:
    from bot.wiring import flow_problems

    directory = args.directory or settings.flows_dir
    problems = flow_problems(settings, directory)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) in {directory}", file=sys.stderr)
        return 1
    print(f"{directory}: all flows are valid")
    return 0


def _flows_test(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli.flowtests import run_flow_tests

    logging.getLogger().setLevel(logging.DEBUG if args.verbose else logging.ERROR)  # results only
    return run_flow_tests(settings, args.directory or settings.flows_dir)


def _chat(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli.chat import run_chat

    logging.getLogger().setLevel(logging.DEBUG if args.verbose else logging.ERROR)  # replies only
    return asyncio.run(
        run_chat(settings, phone=args.phone, name=args.name, language=args.lang, database_url=args.database)
    )


def _flows_graph(settings: Settings, args: argparse.Namespace) -> int:
    """Print the diagram; exit 1 with the problems when the flows do not load, 2 for an unknown flow."""
    from bot.engine import FlowLoadError, load_flows
    from bot.engine.graph import as_data, dot, mermaid
    from bot.wiring import checked_actions, load_shop_content

    directory, file, name = _graph_source(args.flow, args.directory or settings.flows_dir)
    try:
        flows = load_flows(directory, checked_actions(settings), load_shop_content(settings))
    except FlowLoadError as exc:
        for problem in exc.problems:
            print(problem)
        print(f"{len(exc.problems)} problem(s) in {directory}; fix them to draw the flows", file=sys.stderr)
        return 1
    names = [name] if name else None
    if file is not None:
        names = [flow.name for flow in flows.flows.values() if flow.file.resolve() == file.resolve()]
    if name is not None and name not in flows.flows:
        known = ", ".join(sorted(flows.flows))
        print(f"there is no flow '{name}' in {directory}; the flows are: {known}", file=sys.stderr)
        return 2
    if args.format == "json":
        import json

        print(json.dumps(as_data(flows, names), indent=2, ensure_ascii=False))
        return 0
    print(dot(flows, names) if args.format == "dot" else mermaid(flows, names), end="")
    return 0


def _graph_source(flow: str | None, default: Path) -> tuple[Path, Path | None, str | None]:
    """FLOW as (directory to load, .yaml file to draw, flow name): a path wins over a flow name."""
    path = Path(flow) if flow else None
    if path is not None and path.is_file() and path.suffix in (".yaml", ".yml"):
        return path.parent, path, None
    if path is not None and path.is_dir():
        return path, None, None
    return default, None, flow


def _templates_sync(settings: Settings, args: argparse.Namespace) -> int:
    """Exit 0: all approved and matching (or sandbox); 1: something is not; 2: bad template files."""
    from bot.cli.template_sync import print_report, sync_templates

    logging.getLogger().setLevel(logging.DEBUG if args.verbose else logging.WARNING)  # the report only
    report = asyncio.run(sync_templates(settings))
    print_report(report)
    return report.exit_code


def _db_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from bot.db import close_db, init_db

    async def run() -> list[str]:
        report = await init_db(settings.database_url, migrate_schema=True)
        await close_db()
        assert report is not None
        return report.lines()

    for line in asyncio.run(run()):
        print(line)
    print(f"database ready: {settings.database.url}")
    return 0


def _db_makemigrations(settings: Settings, args: argparse.Namespace) -> int:
    from bot.db.schema import make_migrations, model_changes

    if args.check:
        changes = asyncio.run(model_changes())
        for change in changes:
            print(change)
        if changes:
            print(
                f"{len(changes)} model change(s) without a migration: run `bot db makemigrations --name ...`",
                file=sys.stderr,
            )
            return 1
        print("the migrations make exactly the models")
        return 0
    paths = asyncio.run(make_migrations(args.name))
    for path in paths:
        print(f"wrote {path}")
    if not paths:
        print("no changes: the migrations already make exactly the models")
    return 0


def _replay(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli.replay import replay

    return asyncio.run(replay(settings, since=args.since, phone=args.phone, resend=args.resend))


def _apikeys_add(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli.orders import apikeys_add

    logging.getLogger().setLevel(logging.WARNING)  # stdout carries the key only
    return asyncio.run(apikeys_add(settings, args.name))


def _apikeys_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli.orders import apikeys_revoke

    return asyncio.run(apikeys_revoke(settings, args.name))


def _technicians_add(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli.technicians import technicians_add

    logging.getLogger().setLevel(logging.WARNING)  # stdout carries the token only
    return asyncio.run(technicians_add(settings, args.name, args.role, args.phone))


def _apikeys_list(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli.orders import apikeys_list

    return asyncio.run(apikeys_list(settings))


def _technicians_list(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli.technicians import technicians_list

    return asyncio.run(technicians_list(settings))


def _technicians_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli.technicians import technicians_revoke

    return asyncio.run(technicians_revoke(settings, args.name))


def _retention_run(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli.privacy import retention_run

    return asyncio.run(retention_run(settings, dry_run=args.dry_run))


def _erase(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli.privacy import erase

    if not args.yes and sys.stdin.isatty():
        answer = input(f"Erase everything about {args.phone}? This cannot be undone. Type yes: ")
        if answer.strip().lower() != "yes":
            print("bot erase: nothing erased", file=sys.stderr)
            return 1
    return asyncio.run(erase(settings, args.phone))


def _export(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli.privacy import export

    logging.getLogger().setLevel(logging.DEBUG if args.verbose else logging.WARNING)  # stdout: the JSON
    return asyncio.run(export(settings, args.phone))


def _orders_import(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli.orders import orders_import

    return asyncio.run(orders_import(settings, args.file))


def _reminders_due(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli.appointments import reminders_due

    logging.getLogger().setLevel(logging.DEBUG if args.verbose else logging.WARNING)  # the report only
    return asyncio.run(reminders_due(settings, args.hours))


def _stats(settings: Settings, args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from bot.cli.stats import print_stats

    logging.getLogger().setLevel(logging.DEBUG if args.verbose else logging.WARNING)  # the tables only
    try:
        return asyncio.run(print_stats(settings, args.first, args.end, args.group))
    except (ValidationError, ValueError) as exc:
        print(f"bot stats: {exc}", file=sys.stderr)
        return 2


def _costs(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli.costs import print_costs

    logging.getLogger().setLevel(logging.DEBUG if args.verbose else logging.WARNING)  # the tables only
    try:
        return asyncio.run(print_costs(settings, args.month))
    except ValueError as exc:
        print(f"bot costs: {exc}", file=sys.stderr)
        return 2
