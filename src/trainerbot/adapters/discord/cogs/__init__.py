"""One cog per command group of the core, with the same names (``ChatCog`` → ``core.chat``).
``bot.TrainerBot.setup_hook`` builds them with what each uses; no cog imports another."""

from trainerbot.adapters.discord.cogs.chat import ChatCog
from trainerbot.adapters.discord.cogs.dashboard import DashboardCog
from trainerbot.adapters.discord.cogs.datasets import DatasetsCog
from trainerbot.adapters.discord.cogs.feedback import FeedbackCog
from trainerbot.adapters.discord.cogs.general import GeneralCog
from trainerbot.adapters.discord.cogs.models import ModelsCog
from trainerbot.adapters.discord.cogs.review import ReviewCog
from trainerbot.adapters.discord.cogs.training import TrainingCog
from trainerbot.adapters.discord.cogs.voice import VoiceCog

__all__ = ["ChatCog", "DashboardCog", "DatasetsCog", "FeedbackCog", "GeneralCog", "ModelsCog", "ReviewCog", "TrainingCog",
           "VoiceCog"]
