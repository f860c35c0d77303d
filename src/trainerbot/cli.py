"""Command line: ``trainerbot run`` (Discord with a token, else the console) and
``trainerbot console`` (the local console, scriptable through standard input).

Run ``trainerbot --help``. Settings come from the environment and ``.env``; options
here override the data folder. Exit status 2 means bad settings or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from trainerbot.config import Settings, load_settings
from trainerbot.errors import ConfigError

log = logging.getLogger("trainerbot")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trainerbot", description="A Discord bot a community chats with and teaches.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("run", "start on Discord when DISCORD_TOKEN is set, else the local console"),
                       ("console", "the local console (commands from standard input when it is not a terminal)")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--data-dir", help="data folder (default: ./data, or TRAINERBOT_DATA_DIR)")
        p.add_argument("--guild", default="local", help="console: the server name to act in")
        p.add_argument("--user", default="operator", help="console: your user name")
        p.add_argument("--role", choices=("trainer", "member"), default="trainer", help="console: your role")
    return parser


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


async def _console(settings: Settings, args: argparse.Namespace) -> None:
    from trainerbot.adapters.console.repl import Console, console_caller
    from trainerbot.core import CoreService

    core = await asyncio.to_thread(CoreService.open, settings)
    try:
        caller = console_caller(args.guild, args.user, args.role, settings.trainer_role)
        await Console(core, caller).run()
    finally:
        core.store.close()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {"data_dir": args.data_dir} if args.data_dir else {}
    try:
        settings = load_settings(**overrides)
    except ConfigError as exc:
        print(f"trainerbot: {exc.user_message}", file=sys.stderr)
        return 2
    _configure_logging(settings)
    log.info("settings: %s", settings.redacted())
    if args.command == "run" and settings.discord_token is not None:
        print("trainerbot: DISCORD_TOKEN is set, but this build has no Discord adapter yet; "
              "unset it to use the console.", file=sys.stderr)
        return 2
    try:
        asyncio.run(_console(settings, args))
    except KeyboardInterrupt:
        pass
    except ConfigError as exc:
        print(f"trainerbot: {exc.user_message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
