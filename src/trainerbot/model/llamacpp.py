"""The llama.cpp runtime: chat replies from the shipped model and its taught versions through
``xllamacpp`` (llama.cpp's server, in a child process), about five times faster a token than
float32 torch on 2 cores (bench/RESULTS.md).

A version is served merged: its LoRA adapter is added into the base weights and the result
written once as a GGUF file (``gguf_export``) under ``<data>/models/serving/`` — a cache,
not the version's record (that stays the adapter): at most ``KEEP_FILES`` files, least
recently used removed first, each written under a lock to a temporary name and renamed, so
a crash leaves no half file behind. Merged beats applying the adapter in llama.cpp (935 vs
743 ms for 64 tokens: about 840 extra small operations a token).

Replies read exactly the token IDs the torch model reads (``prompt.encode`` with the
model's own tokenizer), decoded greedily, so the two runtimes answer alike; the worker
checks that on the held-out and general questions before a version is served here
(``training/versions.checks``). The server runs in a child process (see
``ServedModel``); it also opens an HTTP port on 127.0.0.1, locked with a random API key
that never leaves that process.

Everything blocks (the core calls from a worker thread). Nothing downloads anything.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import itertools
import logging
import os
import queue
import socket
import subprocess
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from trainerbot.config import ModelSettings
from trainerbot.errors import NotAvailable
from trainerbot.fileio import exclusive_lock
from trainerbot.model import gguf_export
from trainerbot.model.files import DONE_MARKER, is_adapter
from trainerbot.model.llamacpp_child import N_CTX  # prompts are cut to fit it
from trainerbot.model.prompt import encode

log = logging.getLogger(__name__)

KEEP_FILES = 3  # merged GGUF files kept under models/serving (about 145 MB each at q8_0)
STARTUP_S = 120.0  # a fresh interpreter, the binding and the model's load: about a second


def available() -> bool:
    """Whether the llama.cpp binding is installed (``make run`` installs it)."""
    return importlib.util.find_spec("xllamacpp") is not None


def enabled(model: ModelSettings) -> bool:
    """Whether llama.cpp serves chat under these settings: the runtime chosen, the shipped
    model in use (not scratch, not a folder of the user's), the binding installed. Chat and
    the worker's check ask the same question here."""
    return model.runtime == "llamacpp" and model.model == "smollm2" and model.base_model_dir is None and available()


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
        with exclusive_lock(self.root / ".lock"):
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


class ServedModel:
    """One GGUF file behind llama.cpp's server; a ``runtime.Runtime`` like ``LocalModel``.
    ``tokenizer`` None: a GGUF of the user's, asked in messages through its own chat template.

    The server runs in a child process of its own: llama.cpp's threads are OpenMP threads
    from the same ``libgomp.so.1`` torch loads, and once torch has run with 2 threads in a
    process, llama.cpp in that process decoded at ~60–70 instead of ~110 tokens/s on 2 cores
    (libgomp stops spinning when it counts more threads than cores). The child also keeps a
    crash in native code away from the bot. It answers up to ``slots`` requests at once,
    decoded together (continuous batching); requests and their pieces share one socket pair,
    each message tagged with its request (``llamacpp_child``), and one reader thread here
    hands every piece to the reply it belongs to. The parent tokenises, the child answers
    with text pieces. The caller bounds how many replies it asks for at once (the core's
    reply line); more than ``slots`` wait inside llama.cpp."""

    takes_system = True  # instruct models: the shipped one, its versions, a user's GGUF
    source = "model"
    takes_names = False

    def __init__(self, gguf: Path, folder: Path, tokenizer: Any, *, precision: str, threads: int | None = None,
                 adapters: tuple[Path, ...] = (), slots: int = 1) -> None:
        """``adapters``: llama.cpp-format LoRA files applied at run time (bench/reply_latency.py
        measures that against merging; the bot serves merged files). ``slots``: replies
        decoded at once."""
        ours, theirs = socket.socketpair()
        count = threads or min(os.cpu_count() or 1, 8)
        # A fresh interpreter that imports only the binding (no torch, nothing of the bot's).
        command = [sys.executable, "-m", "trainerbot.model.llamacpp_child", str(theirs.fileno()), os.fspath(gguf), str(count),
                   str(slots), *map(os.fspath, adapters)]
        self._process = subprocess.Popen(command, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        theirs.close()
        self._conn = Connection(ours.detach())
        self._sending = threading.Lock()
        self._replies: dict[int, queue.SimpleQueue[tuple[Any, ...]]] = {}  # the replies in flight, by request ID
        self._next_id = itertools.count(1)
        self._gone = False
        self.folder = folder
        self.tokenizer = tokenizer
        self.slots = slots
        self.max_positions = N_CTX
        self.engine = f"llama.cpp {precision}"
        if not self._conn.poll(STARTUP_S):
            self.close()
            raise NotAvailable("The llama.cpp runtime did not start in time.")
        try:
            first = self._conn.recv()
        except (EOFError, OSError):
            first = ("error", None, "the process ended")
        if first[0] != "ready":
            self.close()
            raise NotAvailable(f"The llama.cpp runtime could not load the model ({first[-1]}).")
        self._reader = threading.Thread(target=self._read, name=f"llamacpp-reader-{self.pid}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        """Hand each message from the child to the reply it belongs to; when the child is gone,
        tell every reply still waiting."""
        try:
            while True:
                message = self._conn.recv()
                waiting = self._replies.get(message[1])
                if waiting is not None:  # else the rest of a reply whose reader left early
                    waiting.put(message)
        except (EOFError, OSError, ValueError):
            pass
        self._gone = True
        for waiting in list(self._replies.values()):
            waiting.put(("gone",))

    def _send(self, message: tuple[Any, ...]) -> None:
        try:
            with self._sending:
                self._conn.send(message)
        except (OSError, ValueError) as exc:
            raise NotAvailable("The llama.cpp runtime stopped; the next message starts it again.") from exc

    @property
    def label(self) -> str:
        return f"base:{self.folder.name}"

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def alive(self) -> bool:
        return self._process.poll() is None and not self._gone

    def close(self) -> None:
        """End the child process (at once if it does not leave when asked)."""
        with contextlib.suppress(OSError, ValueError), self._sending:
            self._conn.send(("close",))
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(5)
        self._conn.close()

    def __del__(self) -> None:
        process = getattr(self, "_process", None)
        if process is not None and process.poll() is None:  # not closed by its owner: never leave it behind
            process.kill()
            process.wait(5)

    def encode(self, conversation: list[dict[str, str]], max_new_tokens: int) -> list[int]:
        return encode(self.tokenizer, conversation, max_positions=self.max_positions, max_new_tokens=max_new_tokens,
                      takes_system=True)

    def _request(self, conversation: list[dict[str, str]], max_new_tokens: int, ignore_eos: bool) -> tuple[str, dict[str, Any]]:
        """What the child is sent: token IDs through our tokenizer, or — for a GGUF of the
        user's, with no tokenizer here — the messages, for the file's own chat template."""
        options = {"temperature": 0.0, "top_k": 1, "cache_prompt": True, "stream": True, "ignore_eos": ignore_eos}
        if self.tokenizer is None:
            turns = [{"role": t["role"], "content": t["content"]} for t in conversation]
            return "chat", {"messages": turns, "max_tokens": max_new_tokens, **options}
        ids = self.encode(conversation, max_new_tokens)
        return "complete", {"prompt": ids, "max_tokens": min(max_new_tokens, self.max_positions - len(ids)), **options}

    def answer_loss(self, conversation: list[dict[str, str]], answer: str) -> float | None:
        return None  # per-token losses come from the torch model (the reference)

    def reply(self, conversation: list[dict[str, str]], *, max_new_tokens: int = 128) -> str:
        text = ""
        for partial in self.stream(conversation, max_new_tokens=max_new_tokens):
            text = partial  # each is the whole text so far; the last is the reply
        return text

    def stream(self, conversation: list[dict[str, str]], *, max_new_tokens: int = 128,
               ignore_eos: bool = False) -> Iterator[str]:
        """The reply so far, after each piece llama.cpp hands over (the last value is the whole
        reply). ``ignore_eos``: exactly ``max_new_tokens`` tokens (benchmarks)."""
        kind, request = self._request(conversation, max_new_tokens, ignore_eos)
        rid = next(self._next_id)
        pieces: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._replies[rid] = pieces
        finished = False
        try:
            if self._gone:
                raise NotAvailable("The llama.cpp runtime stopped; the next message starts it again.")
            self._send((kind, rid, request))
            text = ""
            while True:
                message = pieces.get()
                if message[0] == "piece":
                    text += message[2]
                    yield text.strip()
                elif message[0] == "done":
                    finished = True
                    return
                elif message[0] == "gone":
                    finished = True
                    raise NotAvailable("The llama.cpp runtime stopped; the next message starts it again.")
                else:
                    finished = True
                    log.warning("llama.cpp: %s", message[2])
                    raise NotAvailable("The model could not answer that (the llama.cpp runtime refused the request).")
        finally:
            del self._replies[rid]
            if not finished and not self._gone:  # the reader left early: stop that reply (its rest is dropped)
                with contextlib.suppress(NotAvailable):
                    self._send(("stop", rid))


class LlamaCppHub:
    """Served models by folder, at most ``capacity`` at once (least recently used dropped).

    One by default: each is a child process of about 244 MiB. (Two servers in *one* process
    slowed each other — 108 → 55–72 tokens/s, libgomp's thread count — but as separate child
    processes a second, idle one left the first's 64-token reply at 0.55–0.63 s.) Switching
    to another version's file costs its load instead (~0.5 s from the page cache), which a
    bot whose servers share one active version never pays."""

    def __init__(self, data_dir: Path, precision: gguf_export.Precision, *, capacity: int = 1,
                 threads: int | None = None, slots: int = 1) -> None:
        self.files = ServingFiles(data_dir, precision)
        self.precision = precision
        self.capacity = capacity
        self.threads = threads
        self.slots = slots  # replies each server decodes at once
        self._served: OrderedDict[Path, ServedModel] = OrderedDict()
        self._tokenizers: dict[Path, Any] = {}
        self._lock = threading.Lock()

    def get(self, folder: Path, base: Path) -> ServedModel:
        """The served model for ``folder`` (the shipped ``base``, or a version taught on it)."""
        folder = folder.resolve()
        with self._lock:
            served = self._served.pop(folder, None)
            if served is not None and not served.alive:  # its process died (a crash): start it again
                served.close()
                served = None
            if served is None:
                if not gguf_export.servable(folder, base):
                    raise NotAvailable(f"`{folder.name}` is not the shipped model or a version taught on it.")
                gguf = self.files.ensure(folder, base)
                while len(self._served) >= self.capacity:
                    # Closed before the next one starts (see above); a reply still streaming
                    # from it keeps it alive until that reply ends.
                    self._served.popitem(last=False)[1].close()
                served = ServedModel(gguf, folder, self._tokenizer(base), precision=self.precision, threads=self.threads,
                                     slots=self.slots)
            self._served[folder] = served
            return served

    def close(self) -> None:
        with self._lock:
            while self._served:
                self._served.popitem()[1].close()

    def _tokenizer(self, base: Path) -> Any:
        base = base.resolve()
        if base not in self._tokenizers:
            from transformers import AutoTokenizer

            from trainerbot.model.files import offline

            offline()
            self._tokenizers[base] = AutoTokenizer.from_pretrained(base, local_files_only=True)
        return self._tokenizers[base]
