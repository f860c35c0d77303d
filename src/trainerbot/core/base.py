"""What every command group of the core shares: settings, store, folders, limits."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.orm import Session

from trainerbot.config import Settings
from trainerbot.core.ingest import Ingest
from trainerbot.core.limits import RateLimiter
from trainerbot.core.permissions import require_trainer
from trainerbot.core.types import Caller
from trainerbot.datasets import paths
from trainerbot.store import Store, repo
from trainerbot.store.models import Guild

P = ParamSpec("P")
T = TypeVar("T")


class CoreBase:
    """Shared state. Blocking work (the store, files) runs via ``_blocking`` in a thread."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.data_dir: Path = settings.resolved_data_dir
        self.rate = RateLimiter(settings.user_rate_per_minute)
        # Caches filled lazily by the chat commands (guarded: they are used from threads).
        self._cache_lock = threading.Lock()
        self._taught: OrderedDict[int, tuple[tuple[int, int], Any]] = OrderedDict()
        self._hub: Any = None
        self._remote: Any = None  # the OpenAI-compatible chat client, built on first use
        self._tts: dict[str, Any] = {}  # speech engines by name / by model, built on first use
        self._stt: dict[str, Any] = {}
        self._ingest = Ingest(store, settings.feedback_dataset)  # reactions and text feedback, group-committed

    async def _blocking(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))

    def _model_hub(self) -> Any:
        """Loaded local models, shared by chat, ``test`` and ``model compare``."""
        with self._cache_lock:
            if self._hub is None:
                from trainerbot.model.local import ModelHub  # torch loads only once a model is needed

                self._hub = ModelHub(capacity=2, threads=self.settings.torch_threads)
            return self._hub

    def _base_model(self) -> Any:
        """The pretrained base model (prepared on first use) from the hub, or None when the
        model is built from scratch. Blocking."""
        from trainerbot.model.pretrained import base_folder

        folder = base_folder(self.settings)
        if folder is None:
            return None
        return self._model_hub().get(folder, require_done=self.settings.base_model_dir is None)

    def _remote_chat(self) -> Any:
        with self._cache_lock:
            if self._remote is None:
                from trainerbot.model.remote import RemoteChat

                self._remote = RemoteChat(self.settings)
            return self._remote

    def _guild(self, session: Session, caller: Caller) -> Guild:
        """The caller's guild, created on first use (write sessions)."""
        return repo.ensure_guild(session, caller.guild_id, caller.guild_name)

    def _find_guild(self, session: Session, caller: Caller) -> Guild | None:
        """The caller's guild, or None when it has never used the bot (read sessions)."""
        return repo.find_guild(session, caller.guild_id)

    def _root(self, caller: Caller) -> Path:
        return paths.guild_root(self.data_dir, caller.guild_id)

    def _require_trainer(self, caller: Caller, action: str) -> None:
        require_trainer(caller, self.settings.trainer_role, action)

    def _limit(self, caller: Caller, what: str) -> None:
        self.rate.check(f"{caller.guild_id}:{caller.user_id}:{what}")
