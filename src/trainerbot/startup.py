"""Start-up checks and retries, in plain words.

What can fail when the bot starts, and what happens:

- **The data folder** cannot be created or written, or its disk is full: one line naming
  the folder, exit status ``EXIT_DATA_DIR``.
- **The store** (PostgreSQL, or an SQLite file) cannot be reached: one line a try, with the
  URL's password hidden ("cannot reach the database at postgresql://bot:***@db:5432/x:
  connection refused; trying again in 2 s (1 of 5)"), back-off with jitter, then exit
  status ``EXIT_STORE``.
- **Discord** cannot be reached, or refuses the token: ``adapters/discord/connect.py`` (the
  only place that knows discord.py), with the back-off and exit statuses defined here.

No traceback reaches the terminal for these (the log keeps the details at DEBUG), and no
secret is ever printed.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from trainerbot.config import StoreSettings, hide_password
from trainerbot.errors import ConfigError

log = logging.getLogger("trainerbot")
T = TypeVar("T")

EXIT_SETTINGS = 2
EXIT_TOKEN = 3
EXIT_DISCORD = 4
EXIT_STORE = 5
EXIT_DATA_DIR = 6
STORE_MAX_DELAY_S = 30.0
DISCORD_MAX_DELAY_S = 300.0


class StartupError(ConfigError):
    """A start-up failure told in one line, with the exit status to leave with."""

    def __init__(self, user_message: str, status: int) -> None:
        super().__init__(user_message)
        self.status = status


def say(text: str) -> None:
    """One plain line on standard error (and in the log)."""
    print(f"trainerbot: {text}", file=sys.stderr, flush=True)
    log.debug("start-up: %s", text)


def check_data_dir(folder: Path) -> None:
    """The data folder exists (made if need be), is a folder, is writable and has room."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        with open(probe, "wb") as fh:
            fh.write(b"\0" * 4096)
            fh.flush()
        probe.unlink()
    except FileExistsError:
        raise StartupError(f"the data folder {folder} is a file, not a folder; set TRAINERBOT_DATA_DIR to a folder.",
                           EXIT_DATA_DIR) from None
    except NotADirectoryError:
        raise StartupError(f"cannot create the data folder {folder}: part of that path is a file; "
                           "set TRAINERBOT_DATA_DIR to a folder I may write.", EXIT_DATA_DIR) from None
    except PermissionError:
        raise StartupError(f"cannot write to the data folder {folder} (permission denied); make it writable for this "
                           "user or set TRAINERBOT_DATA_DIR to another folder.", EXIT_DATA_DIR) from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise StartupError(f"the disk holding the data folder {folder} is full; free some space and start again.",
                               EXIT_DATA_DIR) from None
        if exc.errno == errno.EROFS:
            raise StartupError(f"the data folder {folder} is on a read-only file system; set TRAINERBOT_DATA_DIR to a "
                               "writable folder.", EXIT_DATA_DIR) from None
        raise StartupError(f"cannot write to the data folder {folder} ({exc.strerror or type(exc).__name__}).",
                           EXIT_DATA_DIR) from None


def backoff(first_s: float, cap_s: float) -> Callable[[int], float]:
    """The wait before try ``n`` (1, 2, …): doubling from ``first_s``, capped, with jitter
    (between half and all of it) so that many restarted bots do not come back in step."""
    def delay(n: int) -> float:
        return min(cap_s, first_s * 2 ** (n - 1)) * random.uniform(0.5, 1.0)
    return delay


def store_reason(exc: BaseException) -> str:
    """Why a database connection failed, in a few words (never the URL or its password)."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    for needle, words in (("connection refused", "connection refused"),
                          ("password authentication failed", "the password was refused"),
                          ("no password supplied", "it wants a password"),
                          ("does not exist", "that database or user does not exist"),
                          ("could not translate host name", "the host name does not resolve"),
                          ("name or service not known", "the host name does not resolve"),
                          ("timeout", "the connection timed out"), ("timed out", "the connection timed out"),
                          ("no route to host", "no route to the host"),
                          ("unable to open database file", "the SQLite file cannot be opened"),
                          ("database is locked", "the SQLite file is locked by another program"),
                          ("the database system is starting up", "the server is still starting"),
                          ("the database system is shutting down", "the server is shutting down")):
        if needle in text:
            return words
    return type(getattr(exc, "orig", None) or exc).__name__


async def open_store_with_retries(store: StoreSettings, first_wait_s: float, open_: Callable[[], Awaitable[T]]) -> T:
    """``open_()`` (which opens the store), tried ``store_retries`` more times with back-off
    (from ``first_wait_s``, doubling) when the database cannot be reached."""
    from sqlalchemy.exc import DBAPIError

    from trainerbot.errors import NotAvailable

    where = hide_password(store.db_url)
    delay = backoff(first_wait_s, STORE_MAX_DELAY_S)
    attempt = 0
    while True:
        try:
            return await open_()
        except (DBAPIError, NotAvailable) as exc:
            if isinstance(exc, NotAvailable) and "database" not in exc.user_message:  # the disk is full
                raise StartupError(f"{exc.user_message} (data folder {store.resolved_data_dir})", EXIT_DATA_DIR) from None
            attempt += 1
            log.debug("opening the store failed", exc_info=exc)
            reason = exc.user_message if isinstance(exc, NotAvailable) else store_reason(exc)
            if attempt > store.store_retries:
                raise StartupError(f"cannot reach the database at {where}: {reason}. Check that it is running and that "
                                   "TRAINERBOT_DATABASE_URL is right.", EXIT_STORE) from None
            wait = delay(attempt)
            say(f"cannot reach the database at {where}: {reason}; trying again in {wait:.1f} s "
                f"({attempt} of {store.store_retries}).")
            await asyncio.sleep(wait)
