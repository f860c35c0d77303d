"""What the cogs, the UI items and the autocomplete callbacks need from the bot, declared
once (as Red-DiscordBot's ``MixinMeta`` declares what its mixins share).

``BotServices`` is the bot's own state beside discord.py's client: the core, what it reads
of the settings (``BotSettings``),
the application's owners and the once-a-minute DM clocks. A UI item reaches it from
``interaction.client`` through ``services``; a cog receives the whole bot
(``base.TrainerBotBase``), which is a ``commands.Bot`` with these attributes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import discord

from trainerbot.config import DiscordSettings, LimitsSettings
from trainerbot.core import Caller, CoreService


@dataclass(frozen=True)
class BotSettings:
    """What the Discord adapter reads of the settings (``bot.bot_settings`` builds it)."""

    discord: DiscordSettings  # the prefix, the trainer role, the chat channels, the token
    limits: LimitsSettings  # attachment and field sizes
    mode: Literal["dev", "prod"]  # dev: `sync` copies the slash commands to the one server
    voice_idle_seconds: float  # how long the bot stays in a silent voice channel


@runtime_checkable
class BotServices(Protocol):
    core: CoreService
    settings: BotSettings
    owner_ids_known: set[int]  # the application's owners (a team's members), learned on connect
    refusal_dm_at: dict[int, float]  # user ID → when a refused reaction was last told by DM
    reason_dm_at: dict[int, float]  # user ID → when they were last asked by DM what was wrong


class Speaker(Protocol):
    """Speaks a chat reply in the voice channel the bot joined in that server, if the author is
    there (the voice cog); whether it was queued."""

    async def speak_reply(self, guild: discord.Guild | None, author: discord.abc.User, caller: Caller,
                          text: str) -> bool: ...


@runtime_checkable
class VoiceLink(Protocol):
    """What the voice cog uses of a voice connection (``discord.VoiceClient``; the tests'
    stand-in, as Discord's voice servers are out of reach)."""

    channel: object
    guild: discord.Guild

    def is_connected(self) -> bool: ...
    def is_playing(self) -> bool: ...
    async def move_to(self, channel: discord.abc.Snowflake | None) -> None: ...
    def play(self, source: discord.AudioSource, *, after: Callable[[Exception | None], object] | None = None) -> None: ...
    async def disconnect(self, *, force: bool = False) -> None: ...


def voice_link(vc: discord.VoiceProtocol | None) -> VoiceLink | None:
    """``vc`` as the voice cog uses it (None: no connection, or not one that can play)."""
    return vc if isinstance(vc, VoiceLink) else None


def services(client: object) -> BotServices:
    """The bot behind an interaction's or a context's client (``TypeError`` for any other client)."""
    if not isinstance(client, BotServices):
        raise TypeError(f"{type(client).__name__} is not trainerbot's bot")
    return client
