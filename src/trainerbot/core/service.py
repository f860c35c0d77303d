"""The core service: every command as a plain async method of its group (no ``discord`` import).

Adapters build one ``CoreService`` with the settings and the store, and call its groups with
a ``Caller`` and plain values — ``core.chat.reply(...)``, ``core.training.train(...)``. Each
command returns a ``Reply`` or raises a ``TrainerBotError`` whose message the adapter shows
as it is. The groups match the Discord cogs one to one (``general``, ``chat``, ``feedback``,
``review``, ``datasets``, ``training``, ``models``, ``persona``, ``voice``); ``delivery`` is the
adapters' bookkeeping around sent messages, ``suggestions`` their autocomplete, and
``dashboard`` the web dashboard's logins, sessions and page views, ``audit`` the decisions made,
``contributors`` who taught what, ``revisions`` every answer taught to a question.

Each group receives what it uses in its constructor: the ``Basis`` every group shares (the
store, the rate limit, the data folder, the trainer role), the sections of the settings it
reads (``config.SECTIONS``; never the whole ``Settings``), and the other groups it calls
(chat records answers through ``delivery`` and transcribes through ``voice``; training
imports and snapshots through ``datasets``; revisions find examples through ``datasets``),
so every call between groups is a typed call. No group imports another group's module; what
several share about corrections is ``corrections.py``, which holds no group.
"""

from __future__ import annotations

import asyncio

from trainerbot.config import (
    DashboardSettings,
    LimitsSettings,
    ModelSettings,
    OpenAISettings,
    Settings,
    TeachingSettings,
    TrainingSettings,
    VoiceSettings,
)
from trainerbot.core.audit import AuditCommands
from trainerbot.core.base import Basis
from trainerbot.core.chat import ChatCommands
from trainerbot.core.contributors import ContributorsCommands
from trainerbot.core.dashboard import DashboardCommands
from trainerbot.core.datasets import DatasetCommands
from trainerbot.core.delivery import Delivery
from trainerbot.core.feedback import FeedbackCommands
from trainerbot.core.general import GeneralCommands
from trainerbot.core.ingest import Ingest
from trainerbot.core.limits import RateLimiter
from trainerbot.core.models import ModelCommands
from trainerbot.core.persona import PersonaCommands
from trainerbot.core.review import ReviewCommands
from trainerbot.core.revisions import RevisionCommands
from trainerbot.core.suggest import Suggestions
from trainerbot.core.training import TrainingCommands
from trainerbot.core.voice import VoiceCommands
from trainerbot.model.runtime import Runtimes
from trainerbot.store import Store
from trainerbot.training.chat_first import ChatFirst
from trainerbot.training.chat_first import path_for as chat_first_path


class CoreService:
    """The command groups over one store and one data folder."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.data_dir = settings.resolved_data_dir
        self.rate = RateLimiter(settings.user_rate_per_minute)  # one limit per person and action, across groups
        # Each group receives the sections of the settings it reads, not the whole object.
        model, openai = settings.section(ModelSettings), settings.section(OpenAISettings)
        training = settings.section(TrainingSettings)
        teaching, limits = settings.section(TeachingSettings), settings.section(LimitsSettings)
        # what answers: llama.cpp, torch, an OpenAI-compatible server
        self.runtimes = Runtimes(model, openai, self.data_dir, taught_meaning=teaching.taught_meaning)
        self.ingest = Ingest(store, teaching.feedback_dataset)  # reactions and text feedback, group-committed
        basis = Basis(store, self.rate, self.data_dir, settings.trainer_role)
        self.general = GeneralCommands(basis, teaching=teaching, language=settings.language)
        self.delivery = Delivery(basis)
        self.voice = VoiceCommands(basis, voice=settings.section(VoiceSettings), limits=limits,
                                   threads=model.torch_threads)
        # A training worker on this machine pauses while a reply is written (chat comes first).
        self.chat_first = ChatFirst(chat_first_path(self.data_dir))
        self.chat = ChatCommands(basis, model=model, teaching=teaching, limits=limits, runtimes=self.runtimes,
                                 delivery=self.delivery, voice=self.voice, chat_first=self.chat_first)
        self.feedback = FeedbackCommands(basis, self.ingest, teaching=teaching, limits=limits)
        self.review = ReviewCommands(basis, teaching=teaching, limits=limits)
        self.datasets = DatasetCommands(basis, limits=limits, training=training)
        self.revisions = RevisionCommands(basis, self.datasets, teaching=teaching, limits=limits)
        self.training = TrainingCommands(basis, self.datasets, model=model, training=training, openai=openai)
        self.models = ModelCommands(basis, self.runtimes, model=model, training=training, teaching=teaching,
                                    limits=limits)
        self.persona = PersonaCommands(basis, self.runtimes)
        self.suggestions = Suggestions(basis, openai=openai)
        self.dashboard = DashboardCommands(basis, dashboard=settings.section(DashboardSettings))
        self.audit = AuditCommands(basis)
        self.contributors = ContributorsCommands(basis)

    @classmethod
    def open(cls, settings: Settings) -> CoreService:
        """Open (and migrate) the configured store and build the service on it."""
        settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
        return cls(settings, Store.open(settings.db_url))

    async def close(self) -> None:
        """Close the remote chat client (if one was opened) and the store."""
        await asyncio.to_thread(self.runtimes.close)
        self.chat.close()
        self.chat_first.close()
        self.store.close()
