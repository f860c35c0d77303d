"""One seam for what serves replies and scores answers, and the one place that chooses it.

A ``Runtime`` streams and gives replies to a conversation (OpenAI-style role/content turns)
and, where it can, the loss of an expected answer. Three kinds:

- llama.cpp in its child process (``llamacpp.ServedModel``): the shipped model and the
  versions taught on it, merged and written as GGUF; or a GGUF file of the user's
  (``TRAINERBOT_BASE_MODEL_GGUF``) with its own chat template;
- torch (``local.LocalModel``): any Hugging Face folder and LoRA adapter, the reference with
  per-token losses;
- an OpenAI-compatible server (``openai_chat.RemoteRuntime``).

``Runtimes`` holds what is loaded (shared by chat, ``test``, ``model compare``) and picks,
from a model version's backend and the settings: ``for_chat`` (llama.cpp where it serves
the model and the worker's check did not find it answering differently, else torch; the
server for a remote version) and ``for_scoring`` (torch or the server: what ``test``,
``model compare`` and the worker's held-out and general checks read). The worker, which has
no ``Runtimes``, asks ``scoring_runtime`` — the same choice. Everything here blocks; the
core calls it from a worker thread. Nothing loads until a reply needs it, so a bot that
never answers never imports torch, llama.cpp or the OpenAI SDK.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from trainerbot.config import ModelSettings, OpenAISettings
from trainerbot.errors import NotAvailable
from trainerbot.model.prompt import SYSTEM

if TYPE_CHECKING:
    from trainerbot.model.embeddings import Embedder
    from trainerbot.model.llamacpp import LlamaCppHub, ServedModel
    from trainerbot.model.local import LocalModel, ModelHub, Weights
    from trainerbot.model.openai_chat import RemoteRuntime
    from trainerbot.store.tables import ModelVersion

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"


class Runtime(Protocol):
    """What answers: blocking calls, from a worker thread."""

    engine: str  # "llama.cpp q8_0", "torch", "openai:<model>": what `model list` and the checks name
    takes_system: bool  # reads a system turn (the persona, the taught facts); a model built from scratch does not
    source: str  # what a reply's record says answered: "model" (ours, on this machine) or "remote" (a server)
    takes_names: bool  # takes OpenAI's `name` field on a turn (a server's API); else names go into the content
    slots: int  # replies it writes at once (llama.cpp's batch; torch one at a time); more wait in the core's line

    @property
    def label(self) -> str:
        """How a reply names the model when no version of the server's is active
        (``base:<folder>``, ``openai:<model>``)."""
        ...

    def stream(self, conversation: list[dict[str, str]], *, max_new_tokens: int = 128) -> Iterator[str]:
        """The reply so far, after each piece (the last value is the whole reply)."""
        ...

    def reply(self, conversation: list[dict[str, str]], *, max_new_tokens: int = 128) -> str:
        """The whole reply."""
        ...

    def answer_loss(self, conversation: list[dict[str, str]], answer: str) -> float | None:
        """Mean per-token loss of ``answer`` after the conversation; None where a runtime has none."""
        ...


def llamacpp_serves(metrics: dict[str, Any] | None) -> bool | None:
    """The worker's runtime verdict on a version: False when llama.cpp answered it worse than
    torch (torch serves it then), True when it passed, None when it was not checked."""
    runtime = (metrics or {}).get("runtime")
    verdict = runtime.get("serves") if isinstance(runtime, dict) else None
    return verdict if isinstance(verdict, bool) else None


def own_gguf(model: ModelSettings) -> Path | None:
    """The user's GGUF file (``TRAINERBOT_BASE_MODEL_GGUF``), checked; None when none is set."""
    if model.base_model_gguf is None:
        return None
    path = model.base_model_gguf.expanduser()
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError:
        raise NotAvailable(f"TRAINERBOT_BASE_MODEL_GGUF names no readable file (`{path.name}`).") from None
    if magic != GGUF_MAGIC:
        raise NotAvailable(f"TRAINERBOT_BASE_MODEL_GGUF (`{path.name}`) is not a GGUF file.")
    return path


def scoring_runtime(model: ModelSettings, openai: OpenAISettings, data_dir: Path, version: ModelVersion,
                    weights: Weights | None = None) -> Runtime | None:
    """The runtime that answers held-out and general questions as ``version`` does: the
    server for a remote version, torch from its folder otherwise; None when its files are
    not on disk. ``weights``: a base already loaded here, which an adapter on it shares."""
    if version.backend == "openai":
        from trainerbot.model.openai_chat import RemoteRuntime

        return RemoteRuntime(openai, str(version.base), slots=model.chat_slots)
    from trainerbot.model.files import adapter_base, is_adapter, is_complete

    folder = data_dir / version.path if version.path else None
    if folder is None or not is_complete(folder):
        return None
    from trainerbot.model.local import LocalModel

    if weights is not None and not (is_adapter(folder) and adapter_base(folder) == weights.folder.resolve()):
        weights = None
    return LocalModel(folder, threads=model.torch_threads, weights=weights)


class Runtimes:
    """The loaded runtimes of one process, and the choice among them."""

    def __init__(self, model: ModelSettings, openai: OpenAISettings, data_dir: Path, *, taught_meaning: bool) -> None:
        self.model, self.openai, self.data_dir = model, openai, data_dir
        self.taught_meaning = taught_meaning  # whether chat matches taught questions by meaning (an embedder)
        self._lock = threading.Lock()  # the core's groups call in from worker threads
        self._hub: ModelHub | None = None
        self._llamacpp: LlamaCppHub | None = None
        self._llamacpp_serves: dict[Path, bool] = {}  # per model folder (a done folder never changes)
        self._remote: dict[str, RemoteRuntime] = {}
        self._own: ServedModel | None = None
        self._embedder: Embedder | None = None
        self._embedder_missing = False

    # ------------------------------------------------------------ the persona
    def shipped_system(self, backend: str | None) -> str:
        """The persona a server has before a trainer sets one, for a version's backend (None:
        the configured one): the OpenAI backend's configured system line, else the shipped one."""
        return (self.openai.openai_system or SYSTEM) if (backend or self.model.backend) == "openai" else SYSTEM

    def system_for(self, runtime: Runtime, own: str | None, version: ModelVersion | None) -> str | None:
        """The system turn ``runtime`` answers under: the server's own persona, else the shipped
        one for the version's backend; None for a runtime that takes no system turn."""
        if not runtime.takes_system:
            return None
        return own or self.shipped_system(version.backend if version is not None else None)

    # ------------------------------------------------------------ the choice
    def for_chat(self, version: ModelVersion | None) -> Runtime | None:
        """What answers chat with ``version`` active (None: before any version, the base the
        settings name). None with the from-scratch model before its first training."""
        if version is not None and version.backend == "openai":
            return self.remote(str(version.base))
        if version is None and self.model.backend == "openai":
            return self.remote(self.openai.openai_model)
        if version is None and (gguf := own_gguf(self.model)) is not None:
            return self._own_gguf(gguf)
        folder = self.data_dir / version.path if version is not None and version.path else None
        served = self._served(folder, version.metrics if version is not None else None)
        if served is not None:
            return served
        return self.hub().get(folder) if folder is not None else self.base_model()

    def for_scoring(self, version: ModelVersion | None) -> Runtime | None:
        """What ``test`` and ``model compare`` run: torch (the reference, with losses) or the
        server; a user's GGUF before any version (it has no torch weights)."""
        if version is not None and version.backend == "local" and version.path:
            return self.hub().get(self.data_dir / version.path)
        if version is not None:
            return scoring_runtime(self.model, self.openai, self.data_dir, version)
        if self.model.backend == "openai":
            return self.remote(self.openai.openai_model)
        if (gguf := own_gguf(self.model)) is not None:
            return self._own_gguf(gguf)
        return self.base_model()

    # ----------------------------------------------------------- the holders
    def hub(self) -> ModelHub:
        """Loaded torch models (versions and bases), least recently used dropped first."""
        with self._lock:
            if self._hub is None:
                from trainerbot.model.local import ModelHub

                self._hub = ModelHub(capacity=2, threads=self.model.torch_threads)
            return self._hub

    def base_model(self) -> LocalModel | None:
        """The pretrained base model (prepared on first use), or None when the model is built
        from scratch."""
        from trainerbot.model.pretrained import base_folder

        folder = base_folder(self.model, self.data_dir)
        if folder is None:
            return None
        return self.hub().get(folder, require_done=self.model.base_model_dir is None)

    def llamacpp(self) -> LlamaCppHub:
        with self._lock:
            if self._llamacpp is None:
                from trainerbot.model.llamacpp import LlamaCppHub

                self._llamacpp = LlamaCppHub(self.data_dir, self.model.runtime_precision,
                                             threads=self.model.torch_threads, slots=self.model.chat_slots)
            return self._llamacpp

    def remote(self, model: str) -> RemoteRuntime:
        with self._lock:
            if model not in self._remote:
                from trainerbot.model.openai_chat import RemoteRuntime

                self._remote[model] = RemoteRuntime(self.openai, model,
                                                    slots=self.model.chat_slots)
            return self._remote[model]

    def embedder(self) -> Embedder | None:
        """The sentence-embedding model for finding taught facts by meaning (loaded on first
        use), or None when it is switched off or not installed (facts are then found by words)."""
        with self._lock:
            if self._embedder is None and not self._embedder_missing and self.taught_meaning:
                from trainerbot.model import embeddings

                try:
                    # One thread: a message's embedding is a few milliseconds either way, and a
                    # second OpenMP team in this process would contend with llama.cpp's child.
                    self._embedder = embeddings.shared(1)
                except NotAvailable as exc:
                    log.warning("%s Taught facts are found by their words alone.", exc.user_message)
                    self._embedder_missing = True
            return self._embedder

    def _own_gguf(self, gguf: Path) -> ServedModel:
        from trainerbot.model.llamacpp import ServedModel

        with self._lock:
            if self._own is None or not self._own.alive:
                self._own = ServedModel(gguf, gguf, None, precision="GGUF", threads=self.model.torch_threads,
                                        slots=self.model.chat_slots)
            return self._own

    def _served(self, folder: Path | None, metrics: dict[str, Any] | None) -> ServedModel | None:
        from trainerbot.model import gguf_export, llamacpp

        if not llamacpp.enabled(self.model):
            return None
        if llamacpp_serves(metrics) is False:
            return None  # the worker found llama.cpp answering this version differently
        from trainerbot.model.pretrained import prepare_base

        base = prepare_base(self.data_dir)
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

    def close(self) -> None:
        """End the llama.cpp processes and the servers' connections, if they were opened."""
        with self._lock:
            remote, self._remote = list(self._remote.values()), {}
            served, self._llamacpp = self._llamacpp, None
            own, self._own = self._own, None
        if served is not None:
            served.close()
        if own is not None:
            own.close()
        for client in remote:
            client.close()
