"""Logging in to Discord at start, in plain words (see ``trainerbot.startup``).

- Discord cannot be reached (DNS, network, Discord's own 5xx): one line a try, then retries
  with exponential back-off and jitter, capped at ``DISCORD_MAX_DELAY_S``, as the gateway's
  own reconnect does once connected — for ever unless ``discord_retries`` says otherwise
  (then exit status ``EXIT_DISCORD``). A worker started meanwhile keeps working.
- The token is refused (401): one line, exit status ``EXIT_TOKEN``; no retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aiohttp
import discord

from trainerbot.config import DiscordSettings
from trainerbot.startup import DISCORD_MAX_DELAY_S, EXIT_DISCORD, EXIT_TOKEN, StartupError, backoff, say

log = logging.getLogger("trainerbot")


def discord_reason(exc: BaseException) -> str:
    """Why Discord could not be reached, in a few words."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "the name discord.com does not resolve (DNS); check the network and DNS"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"no connection to {exc.host} (network down or a firewall); check the network"
    if isinstance(exc, discord.DiscordServerError):
        return f"Discord answered with an error of its own (HTTP {exc.status}); see discordstatus.com"
    if isinstance(exc, discord.HTTPException):
        return f"Discord answered HTTP {exc.status}"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "the connection timed out; check the network"
    return type(exc).__name__


async def login_with_retries(discord_settings: DiscordSettings, first_wait_s: float,
                             login: Callable[[], Awaitable[None]]) -> None:
    """Log in to Discord, retrying (from ``first_wait_s``, doubling) while it cannot be
    reached; a refused token ends it."""
    retries = discord_settings.discord_retries
    delay = backoff(first_wait_s, DISCORD_MAX_DELAY_S)
    attempt = 0
    while True:
        try:
            await login()
            return
        except discord.LoginFailure:
            raise StartupError("Discord refused the token (check DISCORD_TOKEN: the bot's token from the developer portal, "
                               "Bot → Reset Token).", EXIT_TOKEN) from None
        except (TimeoutError, aiohttp.ClientError, OSError, discord.DiscordServerError) as exc:
            attempt += 1
            log.debug("logging in to Discord failed", exc_info=exc)
            reason = discord_reason(exc)
            if retries and attempt > retries:
                raise StartupError(f"cannot reach Discord: {reason}. Gave up after {retries} retries.",
                                   EXIT_DISCORD) from None
            wait = delay(attempt)
            say(f"cannot reach Discord: {reason}; trying again in {wait:.1f} s (try {attempt + 1}).")
            await asyncio.sleep(wait)
