"""The core service: every command as a plain async method (no ``discord`` import).

Adapters build one ``CoreService`` with the settings and the store, and call it with a
``Caller`` and plain values. Each method returns a ``Reply`` or raises a
``TrainerBotError`` whose message the adapter shows as it is.
"""

from __future__ import annotations

from trainerbot.config import Settings
from trainerbot.core.chat import ChatCommands
from trainerbot.core.datasets import DatasetCommands
from trainerbot.core.evaluation import EvaluationCommands
from trainerbot.core.feedback import FeedbackCommands
from trainerbot.core.general import GeneralCommands
from trainerbot.core.review import ReviewCommands
from trainerbot.core.suggest import SuggestCommands
from trainerbot.core.training import TrainingCommands
from trainerbot.core.voice import VoiceCommands
from trainerbot.store import Store


class CoreService(GeneralCommands, ChatCommands, TrainingCommands, DatasetCommands, FeedbackCommands, VoiceCommands,
                  EvaluationCommands, ReviewCommands, SuggestCommands):
    """All command groups over one store and one data folder."""

    @classmethod
    def open(cls, settings: Settings) -> CoreService:
        """Open (and migrate) the configured store and build the service on it."""
        settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
        return cls(settings, Store.open(settings.db_url))

    async def close(self) -> None:
        """Close the remote chat client (if one was opened) and the store."""
        remote, self._remote = self._remote, None
        if remote is not None:
            await remote.close()
        self.store.close()
