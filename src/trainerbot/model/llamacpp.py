"""The llama.cpp runtime: chat replies from the shipped model and its taught versions through
``xllamacpp`` (llama.cpp's server, in this process), about five times faster a token than
float32 torch on 2 cores (bench/RESULTS.md).

A version is served merged: its LoRA adapter is added into the base weights and the result
written once as a GGUF file (``gguf_export``) under ``<data>/models/serving/`` — a cache,
not the version's record (that stays the adapter): at most ``KEEP_FILES`` files, least
recently used removed first, each written under a lock to a temporary name and renamed, so
a crash leaves no half file behind. Merged beats applying the adapter in llama.cpp (1.2 s vs
0.7 s for 64 tokens: 840 extra small operations a token).

Replies read exactly the token IDs the torch model reads (``prompt.encode`` with the
model's own tokenizer), decoded greedily, so the two runtimes answer alike; the worker
checks that on the held-out and general questions before a version is served here
(``training/versions.runtime_check``). llama.cpp's server also opens an HTTP port on
127.0.0.1; it is locked with a random API key that never leaves this object.

Everything blocks (the core calls from a worker thread). Nothing downloads anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import logging
import os
import queue
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trainerbot.errors import NotAvailable
from trainerbot.model import gguf_export
from trainerbot.model.files import DONE_MARKER, is_adapter
from trainerbot.model.prompt import encode

log = logging.getLogger(__name__)

KEEP_FILES = 3  # merged GGUF files kept under models/serving (about 145 MB each at q8_0)
N_CTX = 2048  # the context window served (prompts are cut to fit, oldest turns first)


def available() -> bool:
    """Whether the llama.cpp binding is installed (``make run`` installs it)."""
    return importlib.util.find_spec("xllamacpp") is not None


class ServingFiles:
    """The merged GGUF files under ``<data>/models/serving/``."""

    def __init__(self, data_dir: Path, precision: gguf_export.Precision) -> None:
        self.root = data_dir / "models" / "serving"
        self.precision = precision

    def path_for(self, folder: Path) -> Path:
        """The file for a model folder: named by the folder and its done-marker (a version is
        never rewritten once done), and the precision."""
        marker = (folder / DONE_MARKER).read_bytes()
        key = hashlib.sha256(str(folder.resolve()).encode() + b"\0" + marker).hexdigest()[:16]
        return self.root / f"{folder.name}-{key}.{self.precision}.gguf"

    def ensure(self, folder: Path, base: Path) -> Path:
        """The file for ``folder`` (the base itself, or an adapter on it), written if missing."""
        target = self.path_for(folder)
        self.root.mkdir(parents=True, exist_ok=True)
        with _exclusive(self.root / ".lock"):
            if not target.is_file():
                partial = target.with_name(f".{target.name}.partial")
                try:
                    gguf_export.write(base, partial, adapter=folder if is_adapter(folder) else None, precision=self.precision)
                    os.replace(partial, target)
                finally:
                    partial.unlink(missing_ok=True)
                log.info("wrote the llama.cpp file for %s (%s, %.0f MB)", folder.name, self.precision,
                         target.stat().st_size / 1e6)
            os.utime(target)
            self._prune(keep=target)
        return target

    def _prune(self, keep: Path) -> None:
        files = sorted(self.root.glob("*.gguf"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in [f for f in files if f != keep][KEEP_FILES - 1:]:
            old.unlink(missing_ok=True)  # a server still serving it keeps its open mapping


@contextlib.contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    with open(lock_file, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class ServedModel:
    """One GGUF file behind llama.cpp's server; answers like ``LocalModel`` (stream, reply)."""

    takes_system = True  # only the shipped instruct model and its versions are served here

    def __init__(self, gguf: Path, folder: Path, tokenizer: Any, *, precision: str, threads: int | None = None) -> None:
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = os.fspath(gguf)
        params.n_ctx = N_CTX
        params.n_parallel = 1
        count = threads or min(os.cpu_count() or 1, 8)
        params.cpuparams.n_threads = count
        params.cpuparams_batch.n_threads = count
        params.sampling.temp = 0.0  # greedy, like the torch runtime
        params.endpoint_metrics = False
        params.verbosity = 0  # its errors only, not a line per request
        params.api_keys = [secrets.token_hex(32)]  # its 127.0.0.1 HTTP port answers no one else
        self._server = xllamacpp.Server(params)
        self.folder = folder
        self.tokenizer = tokenizer
        self.max_positions = N_CTX
        self.engine = f"llama.cpp {precision}"

    def encode(self, conversation: list[dict[str, str]], max_new_tokens: int) -> list[int]:
        return encode(self.tokenizer, conversation, max_positions=self.max_positions, max_new_tokens=max_new_tokens,
                      takes_system=True)

    def _request(self, conversation: list[dict[str, str]], max_new_tokens: int, stream: bool) -> dict[str, Any]:
        ids = self.encode(conversation, max_new_tokens)
        return {"prompt": ids, "max_tokens": min(max_new_tokens, self.max_positions - len(ids)), "temperature": 0.0,
                "top_k": 1, "cache_prompt": True, "stream": stream}

    def answer_loss(self, conversation: list[dict[str, str]], answer: str) -> float | None:
        return None  # per-token losses come from the torch model (the reference)

    def reply(self, conversation: list[dict[str, str]], *, max_new_tokens: int = 128) -> str:
        result = self._server.handle_completions(self._request(conversation, max_new_tokens, False))
        return _text(result).strip()

    def stream(self, conversation: list[dict[str, str]], *, max_new_tokens: int = 128) -> Iterator[str]:
        """The reply so far, after each piece llama.cpp hands over (the last value is the whole reply)."""
        pieces: queue.Queue[str | BaseException | None] = queue.Queue()
        stop = threading.Event()
        request = self._request(conversation, max_new_tokens, True)

        def on_chunk(chunk: Any) -> bool:
            try:
                pieces.put(_text(chunk))
            except NotAvailable as exc:
                pieces.put(exc)
            return stop.is_set()  # True asks llama.cpp to stop: the reader has gone

        def run() -> None:
            try:
                result = self._server.handle_completions(request, on_chunk)
                if isinstance(result, dict) and "error" in result:
                    _text(result)
            except BaseException as exc:  # handed to the reader, which raises it
                pieces.put(exc)
            finally:
                pieces.put(None)

        worker = threading.Thread(target=run, name="llamacpp-reply", daemon=True)
        worker.start()
        text = ""
        try:
            while (item := pieces.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                if item:
                    text += item
                    yield text.strip()
        finally:
            stop.set()
            worker.join()


def _text(result: Any) -> str:
    """The text of one llama.cpp answer (or one streamed piece); its errors become ``NotAvailable``."""
    if not isinstance(result, dict):
        raise NotAvailable("The llama.cpp runtime gave no answer.")
    if "error" in result:
        error = result["error"]
        message = error.get("message") if isinstance(error, dict) else error
        log.warning("llama.cpp refused a request: %s", message)
        raise NotAvailable("The model could not answer that (the llama.cpp runtime refused the request).")
    choices = result.get("choices") or [{}]
    return str(choices[0].get("text") or "")


class LlamaCppHub:
    """Served models by folder, at most ``capacity`` at once (least recently used dropped)."""

    def __init__(self, data_dir: Path, precision: gguf_export.Precision, *, capacity: int = 2,
                 threads: int | None = None) -> None:
        self.files = ServingFiles(data_dir, precision)
        self.precision = precision
        self.capacity = capacity
        self.threads = threads
        self._served: OrderedDict[Path, ServedModel] = OrderedDict()
        self._tokenizers: dict[Path, Any] = {}
        self._lock = threading.Lock()

    def get(self, folder: Path, base: Path) -> ServedModel:
        """The served model for ``folder`` (the shipped ``base``, or a version taught on it)."""
        folder = folder.resolve()
        with self._lock:
            served = self._served.pop(folder, None)
            if served is None:
                if not gguf_export.servable(folder, base):
                    raise NotAvailable(f"`{folder.name}` is not the shipped model or a version taught on it.")
                served = ServedModel(self.files.ensure(folder, base), folder, self._tokenizer(base),
                                     precision=self.precision, threads=self.threads)
            self._served[folder] = served
            while len(self._served) > self.capacity:
                self._served.popitem(last=False)
            return served

    def _tokenizer(self, base: Path) -> Any:
        base = base.resolve()
        if base not in self._tokenizers:
            from transformers import AutoTokenizer

            from trainerbot.model.files import offline

            offline()
            self._tokenizers[base] = AutoTokenizer.from_pretrained(base, local_files_only=True)
        return self._tokenizers[base]
