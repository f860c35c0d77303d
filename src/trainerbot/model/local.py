"""The ``local`` backend: a Hugging Face causal LM in a folder on this machine.

``LocalModel.reply`` renders the conversation with the tokenizer's chat template, keeps
only as much history as fits the context window, and decodes greedily with a KV cache
in a loop of our own: for Llama-architecture models a fused plain-tensor decoder
(``fastdecode``), else the model's forward with its KV cache (``generate()``'s per-token
overhead is larger than the whole forward pass of the small default model). Calls are serialised per model with a lock,
and ``ModelHub`` keeps a bounded number of loaded models. Everything here blocks: the
core calls it from a worker thread. Weights are only ever read from disk.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from trainerbot.errors import NotAvailable  # noqa: E402
from trainerbot.model.fastdecode import LlamaDecoder, supports  # noqa: E402
from trainerbot.model.files import DONE_MARKER, is_complete  # noqa: E402


hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()


class LocalModel:
    def __init__(self, folder: Path, *, threads: int | None = None) -> None:
        if not is_complete(folder):
            raise NotAvailable(f"The model folder `{folder.name}` is incomplete (no {DONE_MARKER}); it cannot be served.")
        self.folder = folder
        self.tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model: PreTrainedModel = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
        self.model.eval()
        self.lock = threading.Lock()
        self.threads = threads
        self.max_positions = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self.fast = LlamaDecoder(self.model) if supports(self.model) else None

    def encode(self, conversation: list[dict[str, str]], max_new_tokens: int) -> list[int]:
        """Token IDs of the conversation plus the assistant's turn; the oldest turns are dropped to fit."""
        budget = self.max_positions - max_new_tokens
        turns = list(conversation)
        while True:
            ids = self.tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=True)
            if not isinstance(ids, list):
                ids = list(ids["input_ids"])
            if len(ids) <= budget or len(turns) <= 1:
                return ids[-budget:]
            turns = turns[1:]

    @torch.inference_mode()
    def generate_ids(self, ids: list[int], max_new_tokens: int, min_new_tokens: int = 0) -> list[int]:
        """Greedy decoding; the end-of-turn token ends it once ``min_new_tokens`` are out."""
        eos = self.tokenizer.eos_token_id
        if self.fast is not None:
            return self.fast.generate(ids, max_new_tokens, eos, min_new_tokens)
        out = self.model(input_ids=torch.tensor([ids]), use_cache=True, logits_to_keep=1)
        token = int(out.logits[0, -1].argmax())
        produced: list[int] = []
        for _ in range(max_new_tokens):
            if token == eos and len(produced) >= min_new_tokens:
                break
            produced.append(token)
            out = self.model(input_ids=torch.tensor([[token]]), cache=out.cache, use_cache=True, logits_to_keep=1)
            token = int(out.logits[0, -1].argmax())
        return produced

    @torch.inference_mode()
    def answer_loss(self, conversation: list[dict[str, str]], answer: str) -> float:
        """Mean per-token loss (nats) of ``answer`` and the end of turn after the conversation —
        the part a completion-only SFT trains on."""
        with self.lock:
            if self.threads:
                torch.set_num_threads(self.threads)
            target = self.tokenizer.encode(answer, add_special_tokens=False) + [self.tokenizer.eos_token_id]
            target = target[: self.max_positions - 1]
            prompt = self.encode(conversation, len(target))
            ids = torch.tensor([prompt + target])
            labels = torch.full_like(ids, -100)
            labels[0, len(prompt):] = ids[0, len(prompt):]
            return float(self.model(input_ids=ids, labels=labels).loss)

    def reply(self, conversation: list[dict[str, str]], *, max_new_tokens: int = 128) -> str:
        with self.lock:
            if self.threads:
                torch.set_num_threads(self.threads)
            ids = self.encode(conversation, max_new_tokens)
            produced = self.generate_ids(ids, max_new_tokens)
        return self.tokenizer.decode(produced, skip_special_tokens=True).strip()


class ModelHub:
    """Loaded models by folder, at most ``capacity`` at once (least recently used go first)."""

    def __init__(self, capacity: int = 2, threads: int | None = None) -> None:
        self.capacity = capacity
        self.threads = threads
        self._models: OrderedDict[Path, LocalModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, folder: Path) -> LocalModel:
        with self._lock:
            model = self._models.pop(folder, None)
            if model is None:
                model = LocalModel(folder, threads=self.threads)
            self._models[folder] = model
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)
            return model
