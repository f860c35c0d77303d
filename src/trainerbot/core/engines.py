"""The models the core runs, loaded on first use and shared by the groups that answer
with them (chat, ``test``, ``model compare``): the local model hub, the pretrained base,
and the OpenAI-compatible chat client. Torch and the OpenAI client load only once a model
is needed, so a bot that never answers with one never imports them."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from trainerbot.config import Settings

if TYPE_CHECKING:
    from trainerbot.model.local import LocalModel, ModelHub
    from trainerbot.model.remote import RemoteChat


class Engines:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()  # the groups call in from worker threads
        self._hub: ModelHub | None = None
        self._remote: RemoteChat | None = None

    def hub(self) -> ModelHub:
        """Loaded local models (versions and bases), least recently used dropped first."""
        with self._lock:
            if self._hub is None:
                from trainerbot.model.local import ModelHub

                self._hub = ModelHub(capacity=2, threads=self.settings.torch_threads)
            return self._hub

    def base_model(self) -> LocalModel | None:
        """The pretrained base model (prepared on first use), or None when the model is built
        from scratch. Blocking."""
        from trainerbot.model.pretrained import base_folder

        folder = base_folder(self.settings)
        if folder is None:
            return None
        return self.hub().get(folder, require_done=self.settings.base_model_dir is None)

    def remote_chat(self) -> RemoteChat:
        with self._lock:
            if self._remote is None:
                from trainerbot.model.remote import RemoteChat

                self._remote = RemoteChat(self.settings)
            return self._remote

    async def close(self) -> None:
        """Close the remote chat client, if one was opened."""
        with self._lock:
            remote, self._remote = self._remote, None
        if remote is not None:
            await remote.close()
