"""The models the core runs, loaded on first use and shared by the groups that answer
with them (chat, ``test``, ``model compare``): the local model hub (torch), the llama.cpp
runtime that serves chat from the shipped model and its versions, the pretrained base, and
the OpenAI-compatible chat client. Torch, llama.cpp and the OpenAI client load only once a
model is needed, so a bot that never answers with one never imports them.

``chat_model`` picks the runtime for a reply: llama.cpp where it can serve the model and
the worker's check did not find it answering differently (``runtime`` in the version's
metrics), torch otherwise. ``test``, ``model compare`` and the worker's evaluations use the
torch model: it is the reference, and it has the per-token losses they report."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainerbot.config import Settings
from trainerbot.errors import NotAvailable

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from trainerbot.model.llamacpp import LlamaCppHub, ServedModel
    from trainerbot.model.local import LocalModel, ModelHub
    from trainerbot.model.remote import RemoteChat


class Engines:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()  # the groups call in from worker threads
        self._hub: ModelHub | None = None
        self._llamacpp: LlamaCppHub | None = None
        self._llamacpp_serves: dict[Path, bool] = {}  # per model folder (a done folder never changes)
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

    def llamacpp(self) -> LlamaCppHub:
        with self._lock:
            if self._llamacpp is None:
                from trainerbot.model.llamacpp import LlamaCppHub

                self._llamacpp = LlamaCppHub(self.settings.resolved_data_dir, self.settings.runtime_precision,
                                             threads=self.settings.torch_threads)
            return self._llamacpp

    def chat_model(self, folder: Path | None, metrics: dict[str, Any] | None = None) -> ServedModel | LocalModel | None:
        """What answers chat: the version in ``folder`` (``metrics``: its stored metrics), or
        before any version the pretrained base; None with the from-scratch model before its
        first training. Served by llama.cpp when it can be, else by torch. Blocking."""
        served = self._served(folder, metrics or {})
        if served is not None:
            return served
        return self.hub().get(folder) if folder is not None else self.base_model()

    def _served(self, folder: Path | None, metrics: dict[str, Any]) -> ServedModel | None:
        from trainerbot.model import gguf_export, llamacpp

        if not llamacpp.enabled(self.settings):
            return None
        runtime = metrics.get("runtime")
        if isinstance(runtime, dict) and runtime.get("serves") is False:
            return None  # the worker found llama.cpp answering this version differently
        from trainerbot.model.pretrained import prepare_base

        base = prepare_base(self.settings.resolved_data_dir)
        target = (folder or base).resolve()
        if target not in self._llamacpp_serves:  # checked once, not on every message
            self._llamacpp_serves[target] = gguf_export.servable(target, base)
        if not self._llamacpp_serves[target]:
            return None
        try:
            return self.llamacpp().get(target, base)
        except (OSError, ValueError, RuntimeError, NotAvailable) as exc:  # a full disk, an odd adapter: torch answers
            log.warning("llama.cpp cannot serve %s (%s: %s); torch answers instead", target.name, type(exc).__name__, exc)
            self._llamacpp_serves[target] = False
            return None

    def remote_chat(self) -> RemoteChat:
        with self._lock:
            if self._remote is None:
                from trainerbot.model.remote import RemoteChat

                self._remote = RemoteChat(self.settings)
            return self._remote

    async def close(self) -> None:
        """Close the remote chat client and end the llama.cpp process, if they were opened."""
        with self._lock:
            remote, self._remote = self._remote, None
            served, self._llamacpp = self._llamacpp, None
        if served is not None:
            await asyncio.to_thread(served.close)
        if remote is not None:
            await remote.close()
