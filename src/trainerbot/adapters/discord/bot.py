"""``TrainerBot``: the one place that wires Discord to the core.

``make_bot`` builds it with the core and the settings (one gateway connection, or
``ShardedTrainerBot`` for several); ``setup_hook`` adds one cog per command group, handing
each what it uses (chat gets the voice cog as its ``Speaker``), as discord.py's
``examples/advanced_startup.py`` passes dependencies in. What the bot does is in
``base.TrainerBotBase``.
"""

from __future__ import annotations

from discord.ext import commands

from trainerbot.adapters.discord.base import TrainerBotBase
from trainerbot.adapters.discord.cogs import (
    ChatCog,
    DashboardCog,
    DatasetsCog,
    FeedbackCog,
    GeneralCog,
    ModelsCog,
    ReviewCog,
    TrainingCog,
    VoiceCog,
)
from trainerbot.adapters.discord.protocol import BotSettings
from trainerbot.config import DiscordSettings, LimitsSettings, Settings
from trainerbot.core import CoreService


class _WithCogs(TrainerBotBase):
    async def setup_hook(self) -> None:
        voice = VoiceCog(self)
        for cog in (GeneralCog(self), ChatCog(self, voice), FeedbackCog(self), ReviewCog(self), DatasetsCog(self),
                    TrainingCog(self), ModelsCog(self), voice, DashboardCog(self)):
            await self.add_cog(cog)
        await super().setup_hook()


class TrainerBot(_WithCogs, commands.Bot):
    """One gateway connection (the default)."""


class ShardedTrainerBot(_WithCogs, commands.AutoShardedBot):
    """Several gateway connections (``TRAINERBOT_SHARDS``). Every state lives in the store, so
    more bot processes — each with its own shard IDs — can share one store."""


def bot_settings(settings: Settings) -> BotSettings:
    """What the Discord adapter reads of the settings."""
    return BotSettings(discord=settings.section(DiscordSettings), limits=settings.section(LimitsSettings),
                       mode=settings.mode, voice_idle_seconds=settings.voice_idle_seconds)


def make_bot(core: CoreService, settings: Settings) -> TrainerBotBase:
    options = settings.shard_options()
    if options is None:
        return TrainerBot(core, bot_settings(settings))
    return ShardedTrainerBot(core, bot_settings(settings), **options)
