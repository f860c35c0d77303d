"""Command line: ``trainerbot run`` (Discord with a token, else the console),
``trainerbot console`` (the local console, scriptable through standard input),
``trainerbot worker`` (training jobs), ``trainerbot backup PATH`` (a copy of the store) and
``trainerbot migrate --to URL`` (the store copied into another database).

Run ``trainerbot --help``. With ``DISCORD_TOKEN`` set, ``run`` connects to Discord (and
starts a training worker child process); it needs the network only for Discord itself.
Settings come from the environment and ``.env``; options here override the data folder. Exit status 2 means bad settings or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from trainerbot.config import DiscordSettings, OperationsSettings, Settings, StoreSettings, load_settings
from trainerbot.errors import ConfigError
from trainerbot.plural import count
from trainerbot.startup import EXIT_SETTINGS, StartupError, check_data_dir, open_store_with_retries

if TYPE_CHECKING:
    from trainerbot.adapters.web.server import Dashboard
    from trainerbot.ops.server import OpsServer
    from trainerbot.training.supervisor import WorkerSupervisor

log = logging.getLogger("trainerbot")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trainerbot", description="A Discord bot a community chats with and teaches.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("run", "start on Discord when DISCORD_TOKEN is set, else the local console"),
        ("console", "the local console (commands from standard input when it is not a terminal)"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--data-dir", help="data folder (default: ./data, or TRAINERBOT_DATA_DIR)")
        p.add_argument("--guild", default="local", help="console: the server name to act in")
        p.add_argument("--user", default="operator", help="console: your user name")
        p.add_argument("--role", choices=("trainer", "member"), default="trainer", help="console: your role")
        p.add_argument("--no-worker", action="store_true", help="do not start a training worker child process")
        p.add_argument(
            "--verbose",
            "-v",
            action="store_true",
            help="console: also show the logs on standard error (they always go to DATA/trainerbot.log)",
        )
    w = sub.add_parser("worker", help="run training jobs from the queue")
    w.add_argument("--data-dir", help="data folder (default: ./data, or TRAINERBOT_DATA_DIR)")
    w.add_argument("--once", action="store_true", help="run the queued jobs, then exit")
    w.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    w.add_argument("--job", type=int, help="run this one job, already claimed by --as (a Ray job's entrypoint), then exit")
    w.add_argument("--as", dest="claimed_by", help=argparse.SUPPRESS)
    b = sub.add_parser("backup", help="copy the store (SQLite) to PATH while the bot keeps running")
    b.add_argument("path", help="the backup file to write")
    b.add_argument("--data-dir", help="data folder (default: ./data, or TRAINERBOT_DATA_DIR)")
    m = sub.add_parser("migrate", help="copy the store into another (empty) database, e.g. SQLite into PostgreSQL")
    m.add_argument("--to", required=True, dest="target", help="the target database URL (postgresql+psycopg://user@host/db)")
    m.add_argument("--data-dir", help="data folder (default: ./data, or TRAINERBOT_DATA_DIR)")
    return parser


def _configure_logging(settings: Settings, args: argparse.Namespace) -> None:
    """The console keeps its terminal for the conversation: logs go to DATA/trainerbot.log
    (and to standard error with --verbose). The Discord bot and workers log to standard error
    (a service manager's journal) and the bot also to the file."""
    from trainerbot.ops import logs

    console = args.command == "console" or (args.command == "run" and settings.discord_token is None)
    log_file = settings.resolved_data_dir / "trainerbot.log" if args.command in ("run", "console") else None
    logs.configure(settings.section(OperationsSettings), settings.secret_values(), log_file=log_file,
                   to_stderr=not console or getattr(args, "verbose", False))


def _prepare_model(settings: Settings) -> None:
    """Prepare the shipped pretrained model before the first message needs it (once, ~20 s)."""
    if settings.backend != "local" or settings.model == "scratch" or settings.base_model_dir is not None:
        return
    from trainerbot.errors import TrainerBotError
    from trainerbot.model.pretrained import prepare_base

    try:
        prepare_base(settings.resolved_data_dir, progress=lambda text: print(f"trainerbot: {text}", file=sys.stderr, flush=True))
    except TrainerBotError as exc:  # chat says so too; everything else still works
        print(f"trainerbot: {exc.user_message}", file=sys.stderr)


async def _console(settings: Settings, args: argparse.Namespace) -> None:
    from trainerbot.adapters.console.repl import Console, console_caller
    from trainerbot.core import CoreService

    core = await open_store_with_retries(settings.section(StoreSettings), settings.startup_retry_s,
                                         lambda: asyncio.to_thread(CoreService.open, settings))
    await asyncio.to_thread(_prepare_model, settings)
    worker = await _start_worker(settings, args)
    ops = await _start_ops(settings, core, lambda: ("console", True), worker is not None)
    dashboard = await _start_dashboard(settings, core)
    try:
        caller = console_caller(args.guild, args.user, args.role, settings.trainer_role)
        await Console(core, caller, prefix=settings.prefix, max_attachment_bytes=settings.max_attachment_bytes).run()
    finally:
        if dashboard is not None:
            await dashboard.stop()
        if ops is not None:
            await ops.stop()
        if worker is not None:
            await worker.stop()
        await core.close()


async def _discord(settings: Settings, args: argparse.Namespace) -> None:
    from trainerbot.adapters.discord.bot import make_bot
    from trainerbot.adapters.discord.connect import login_with_retries
    from trainerbot.core import CoreService

    core = await open_store_with_retries(settings.section(StoreSettings), settings.startup_retry_s,
                                         lambda: asyncio.to_thread(CoreService.open, settings))
    await asyncio.to_thread(_prepare_model, settings)
    worker = await _start_worker(settings, args)  # it trains while Discord is still being reached
    bots: list[Any] = []
    ops = await _start_ops(
        settings, core, lambda: ("gateway", bool(bots) and bots[0].is_ready() and not bots[0].is_closed()), worker is not None
    )
    dashboard = await _start_dashboard(settings, core)
    assert settings.discord_token is not None
    token = settings.discord_token.get_secret_value()

    async def login() -> None:  # a fresh client each try: a failed login leaves its HTTP session closed
        bot = make_bot(core, settings)
        try:
            await bot.login(token)
        except BaseException:
            await bot.close()
            raise
        bots.append(bot)

    try:
        await login_with_retries(settings.section(DiscordSettings), settings.startup_retry_s, login)
        log.info("logged in to Discord")
        try:
            await bots[0].connect(reconnect=True)  # from here discord.py reconnects by itself
        finally:
            await bots[0].close()
    finally:
        if dashboard is not None:
            await dashboard.stop()
        if ops is not None:
            await ops.stop()
        if worker is not None:
            await worker.stop()
        await core.close()


async def _start_ops(
    settings: Settings, core: Any, connected: Callable[[], tuple[str, bool]], worker_expected: bool
) -> OpsServer | None:
    """/healthz and /metrics, when TRAINERBOT_METRICS_PORT is set."""
    if settings.metrics_port is None:
        return None
    from trainerbot.ops.server import OpsServer

    server = OpsServer(
        core.store, host=settings.metrics_host, port=settings.metrics_port, connected=connected, worker_expected=worker_expected
    )
    await server.start()
    return server


async def _start_dashboard(settings: Settings, core: Any) -> Dashboard | None:
    """The trainers' web dashboard, when TRAINERBOT_DASHBOARD_PORT is set."""
    if settings.dashboard_port is None:
        return None
    from trainerbot.adapters.web.server import Dashboard

    secure = (settings.dashboard_url or "").startswith("https://")
    dashboard = Dashboard(core, host=settings.dashboard_host, port=settings.dashboard_port, trainer_role=settings.trainer_role,
                          prefix=settings.prefix, session_hours=settings.dashboard_session_hours, secure_cookie=secure)
    await dashboard.start()
    return dashboard


async def _start_worker(settings: Settings, args: argparse.Namespace) -> WorkerSupervisor | None:
    """The training worker child, kept alive by a supervisor (unless turned off)."""
    if not settings.start_worker or args.no_worker:
        return None
    from trainerbot.training.supervisor import WorkerSupervisor

    supervisor = WorkerSupervisor(settings.resolved_data_dir, log_file=settings.resolved_data_dir / "worker.log")
    await supervisor.start()
    return supervisor


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from trainerbot.store.tables import JobStatus
    from trainerbot.training.worker import run_one, serve

    if args.job is not None:
        if not args.claimed_by:
            raise ConfigError("`worker --job N` needs `--as WORKER`, the worker that claimed the job.")
        return 0 if run_one(settings, args.job, args.claimed_by) in (JobStatus.SUCCEEDED, JobStatus.CANCELLED) else 1
    serve(settings, once=args.once, parent_pid=args.parent_pid)
    return 0


def _backup(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from trainerbot.store import Store

    store = Store.open(settings.db_url)
    try:
        size = store.backup(Path(args.path))
    finally:
        store.close()
    print(f"Backed up the store to {Path(args.path).expanduser().resolve()} ({size} bytes, integrity ok).")
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from trainerbot.config import hide_password
    from trainerbot.store import Store
    from trainerbot.store.migrate import copy_store

    source = Store.open(settings.db_url)
    try:
        target = Store.open(args.target)
    except Exception as exc:  # a bad URL or an unreachable server: say so without echoing a password
        source.close()
        raise ConfigError(f"Could not open the target database {hide_password(args.target)} ({type(exc).__name__}).") from None
    try:
        tables = copy_store(source, target)
    finally:
        source.close()
        target.close()
    rows = sum(n for n, _ in tables.values())
    print(
        f"Copied {count(rows, 'row')} in {count(len(tables), 'table')} to {hide_password(args.target)}; row counts and "
        f"content hashes match."
    )
    print(f"Point the bot at it: TRAINERBOT_DATABASE_URL={hide_password(args.target)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {"data_dir": args.data_dir} if args.data_dir else {}
    try:
        settings = load_settings(**overrides)
    except ConfigError as exc:
        print(f"trainerbot: {exc.user_message}", file=sys.stderr)
        return EXIT_SETTINGS
    try:
        if args.command in ("run", "console", "worker"):
            check_data_dir(settings.resolved_data_dir)  # before logging writes its file there
        _configure_logging(settings, args)
        log.info("settings: %s", settings.redacted())
        if args.command == "worker":
            try:
                return _worker(settings, args)
            except KeyboardInterrupt:
                return 0
        if args.command in ("backup", "migrate"):
            return (_backup if args.command == "backup" else _migrate)(settings, args)
        try:
            if args.command == "run" and settings.discord_token is not None:
                asyncio.run(_discord(settings, args))
                return 0
            asyncio.run(_console(settings, args))
        except KeyboardInterrupt:
            pass
    except StartupError as exc:
        print(f"trainerbot: {exc.user_message}", file=sys.stderr)
        return exc.status
    except ConfigError as exc:
        print(f"trainerbot: {exc.user_message}", file=sys.stderr)
        return EXIT_SETTINGS
    return 0
