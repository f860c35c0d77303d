"""The ``local`` backend: a Hugging Face causal LM on this machine, optionally with a LoRA adapter.

A version folder is either a whole model (the from-scratch path, or a full fine-tune) or a
PEFT LoRA adapter (``adapter_config.json``) whose ``DONE.json`` names the base folder it
was trained on. ``Weights`` is one loaded base: tokenizer, float32 model and, for
Llama-architecture models, a fused plain-tensor decoder (``fastdecode``); ``ModelHub``
loads each base once per process, and every adapter version on it shares it, applying its
low-rank deltas beside the base weights (a merged copy per version would cost the whole
model's size again). Models ``fastdecode`` cannot reproduce get the adapter merged into a
copy by PEFT.

``LocalModel.reply`` / ``stream`` render the conversation with the tokenizer's chat template
(a leading system message is always kept; the oldest other turns are dropped to fit the
context window) and decode greedily with a KV cache. Calls on one base are serialised with
its lock. Everything here blocks: the core calls it from a worker thread. Weights are only
ever read from disk.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from trainerbot.errors import NotAvailable
from trainerbot.model.build import CHAT_TEMPLATE
from trainerbot.model.fastdecode import Adapter, LlamaDecoder, supports
from trainerbot.model.files import DONE_MARKER, adapter_base, is_adapter, is_complete, offline
from trainerbot.model.prompt import encode


class Weights:
    """One loaded base model; shared by every version that adapts it."""

    def __init__(self, folder: Path, *, require_done: bool = True) -> None:
        if require_done and not is_complete(folder):
            raise NotAvailable(f"The model folder `{folder.name}` is incomplete (no {DONE_MARKER}); it cannot be served.")
        if not (folder / "config.json").is_file():
            raise NotAvailable(f"`{folder.name}` holds no Hugging Face model (config.json).")
        offline()
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
        self._serve(folder, tokenizer, model.eval())

    def _serve(self, folder: Path, tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel) -> None:
        self.folder = folder.resolve()
        self.tokenizer = tokenizer
        self.model = model
        self.lock = threading.Lock()
        self.max_positions = int(getattr(model.config, "max_position_embeddings", 2048))
        self.fast = LlamaDecoder(model) if supports(model) else None
        # Models built from scratch carry our own template and never saw a system turn.
        self.takes_system = tokenizer.chat_template != CHAT_TEMPLATE

    @classmethod
    def sharing(cls, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: Path) -> Weights | None:
        """Weights over a model already in memory (the worker's training copy, before LoRA
        wraps it: its base weights stay frozen), so one process holds the base once. None
        when the fused decoder cannot serve it (the model's own forward would see the adapter)."""
        if not supports(model):
            return None
        self = cls.__new__(cls)
        self._serve(folder, tokenizer, model)
        return self


class LocalModel:
    """A model that answers: a base, and optionally the adapter of one taught version."""

    def __init__(self, folder: Path, *, threads: int | None = None, weights: Weights | None = None,
                 require_done: bool = True) -> None:
        if require_done and not is_complete(folder):
            raise NotAvailable(f"The model folder `{folder.name}` is incomplete (no {DONE_MARKER}); it cannot be served.")
        self.folder = folder
        self.threads = threads
        self.adapter: Adapter | None = None
        if is_adapter(folder):
            base = weights or Weights(adapter_base(folder), require_done=False)
            if base.fast is not None:
                self.adapter = Adapter.load(folder, len(base.fast.layers))
                self.weights = base
            else:  # no fused decoder for this architecture: a merged copy, served by the model's own forward
                from peft import PeftModel

                merged = PeftModel.from_pretrained(copy.deepcopy(base.model), folder).merge_and_unload().eval()
                self.weights = copy.copy(base)
                self.weights.model, self.weights.lock = merged, threading.Lock()
        else:
            self.weights = weights or Weights(folder, require_done=require_done)
        self.tokenizer = self.weights.tokenizer
        self.model = self.weights.model
        self.max_positions = self.weights.max_positions
        self.takes_system = self.weights.takes_system

    engine = "torch"
    source = "model"
    takes_names = False
    slots = 1  # one reply at a time (the weights' lock)

    @property
    def label(self) -> str:
        return f"base:{self.folder.name}"

    @classmethod
    def from_trained(cls, weights: Weights, peft_model: Any, folder: Path, threads: int | None = None) -> LocalModel:
        """The model training just produced, served from memory (no second load of the base)."""
        self = cls.__new__(cls)
        self.folder, self.threads, self.weights = folder, threads, weights
        self.adapter = Adapter.from_model(peft_model)
        self.tokenizer, self.model, self.max_positions = weights.tokenizer, weights.model, weights.max_positions
        self.takes_system = weights.takes_system
        return self

    def encode(self, conversation: list[dict[str, str]], max_new_tokens: int) -> list[int]:
        """Token IDs of the conversation plus the assistant's turn (``prompt.encode``)."""
        return encode(self.tokenizer, conversation, max_positions=self.max_positions, max_new_tokens=max_new_tokens,
                      takes_system=self.takes_system)

    def _threads(self) -> None:
        if self.threads:
            torch.set_num_threads(self.threads)

    @torch.inference_mode()
    def stream_ids(self, ids: list[int], max_new_tokens: int, min_new_tokens: int = 0) -> Iterator[int]:
        """Greedy tokens as they are decided; the end-of-turn token ends it once ``min_new_tokens`` are out.
        The caller holds the lock."""
        eos = self.tokenizer.eos_token_id
        fast = self.weights.fast
        if fast is not None:
            yield from fast.stream(ids, max_new_tokens, eos, min_new_tokens, self.adapter)
            return
        budget = min(max_new_tokens, self.max_positions - len(ids))
        out = self.model(input_ids=torch.tensor([ids]), use_cache=True, logits_to_keep=1)
        token = int(out.logits[0, -1].argmax())
        for produced in range(budget):
            if token == eos and produced >= min_new_tokens:
                return
            yield token
            out = self.model(input_ids=torch.tensor([[token]]), cache=out.cache, use_cache=True,
                             logits_to_keep=1)
            token = int(out.logits[0, -1].argmax())

    def generate_ids(self, ids: list[int], max_new_tokens: int, min_new_tokens: int = 0) -> list[int]:
        with torch.inference_mode():
            return list(self.stream_ids(ids, max_new_tokens, min_new_tokens))

    @torch.inference_mode()
    def answer_loss(self, conversation: list[dict[str, str]], answer: str) -> float:
        """Mean per-token loss (nats) of ``answer`` and the end of turn after the conversation —
        the part a completion-only SFT trains on."""
        with self.weights.lock:
            self._threads()
            target = self.tokenizer.encode(answer, add_special_tokens=False) + [self.tokenizer.eos_token_id]
            target = target[: self.max_positions - 1]
            prompt = self.encode(conversation, len(target))
            ids = prompt + target
            if self.weights.fast is not None:
                logits = self.weights.fast.logits(ids, self.adapter)
                return float(torch.nn.functional.cross_entropy(logits[len(prompt) - 1:-1], torch.tensor(target)))
            tensor = torch.tensor([ids])
            labels = torch.full_like(tensor, -100)
            labels[0, len(prompt):] = tensor[0, len(prompt):]
            return float(self.model(input_ids=tensor, labels=labels).loss)

    def stream(self, conversation: list[dict[str, str]], *, max_new_tokens: int = 128) -> Iterator[str]:
        """The reply so far, after each token (the last value is the whole reply)."""
        with self.weights.lock:
            self._threads()
            ids = self.encode(conversation, max_new_tokens)
            produced: list[int] = []
            with torch.inference_mode():
                text = ""
                for token in self.stream_ids(ids, max_new_tokens):
                    produced.append(token)
                    text = str(self.tokenizer.decode(produced, skip_special_tokens=True)).strip()
                    if not text.endswith("\ufffd"):  # half a character: wait for the rest of its bytes
                        yield text
                if text.endswith("\ufffd"):  # cut at the token limit inside a character: drop its half, as llama.cpp does
                    yield text.rstrip("\ufffd").rstrip()

    def reply(self, conversation: list[dict[str, str]], *, max_new_tokens: int = 128) -> str:
        text = ""
        for partial in self.stream(conversation, max_new_tokens=max_new_tokens):
            text = partial  # each is the whole text so far; the last is the reply
        return text


class ModelHub:
    """Loaded models by folder, at most ``capacity`` versions and as many bases at once (least
    recently used go first). Adapter versions share their base's ``Weights``."""

    def __init__(self, capacity: int = 2, threads: int | None = None) -> None:
        self.capacity = capacity
        self.threads = threads
        self._models: OrderedDict[Path, LocalModel] = OrderedDict()
        self._weights: OrderedDict[Path, Weights] = OrderedDict()
        self._lock = threading.Lock()

    def _weights_locked(self, folder: Path, require_done: bool) -> Weights:
        folder = folder.resolve()
        loaded = self._weights.pop(folder, None) or Weights(folder, require_done=require_done)
        self._weights[folder] = loaded
        while len(self._weights) > self.capacity:
            self._weights.popitem(last=False)
        return loaded

    def get(self, folder: Path, *, require_done: bool = True) -> LocalModel:
        with self._lock:
            model = self._models.pop(folder, None)
            if model is None:
                if is_adapter(folder):
                    model = LocalModel(folder, threads=self.threads, weights=self._weights_locked(adapter_base(folder), False))
                else:
                    model = LocalModel(folder, threads=self.threads, require_done=require_done,
                                       weights=self._weights_locked(folder, require_done))
            self._models[folder] = model
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)
            return model
