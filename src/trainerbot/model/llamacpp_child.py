"""The llama.cpp child process (``ServedModel`` in ``llamacpp.py`` starts it):

    python -m trainerbot.model.llamacpp_child <socket fd> <gguf file> <threads> [lora file…]

It imports only the binding, loads one file and answers one request at a time over the
socket (a ``multiprocessing`` connection): ``("complete", request)`` (token IDs the parent
made) or ``("chat", request)`` (messages, through the file's own chat template: a GGUF of
the user's, with no Hugging Face tokenizer beside it) → ``("piece", text)``…
then ``("done",)`` or ``("error", message)``; a ``("stop",)`` while it streams ends that
reply early; ``("close",)`` or the parent's end of the socket closing ends the process.
"""

from __future__ import annotations

import secrets
import sys
from multiprocessing.connection import Connection
from typing import Any

from trainerbot.errors import NotAvailable

N_CTX = 2048  # the context window served (the parent cuts prompts to fit)


def text_of(result: Any) -> str:
    """The text of one llama.cpp answer (or one streamed piece); its errors become ``NotAvailable``."""
    if not isinstance(result, dict):
        raise NotAvailable("The llama.cpp runtime gave no answer.")
    if "error" in result:
        error = result["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise NotAvailable(f"llama.cpp refused the request: {message}")
    choice = (result.get("choices") or [{}])[0]
    if "delta" in choice:  # a streamed chat chunk
        return str((choice.get("delta") or {}).get("content") or "")
    return str(choice.get("text") or "")


def serve(conn: Connection, gguf: str, threads: int, adapters: list[str]) -> None:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = gguf
    params.n_ctx = N_CTX
    params.n_parallel = 1
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.sampling.temp = 0.0  # greedy, like the torch runtime
    params.endpoint_metrics = False
    params.verbosity = 0  # its errors only, not a line per request
    params.api_keys = [secrets.token_hex(32)]  # its 127.0.0.1 HTTP port answers no one else
    params.lora_adapters = [xllamacpp.CommonAdapterLoraInfo(path, 1.0) for path in adapters]
    try:
        server = xllamacpp.Server(params)
    except Exception as exc:  # told to the parent, which raises it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready",))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the parent has gone
            return
        if message[0] == "close":
            return
        if message[0] not in ("complete", "chat"):
            continue  # a late ("stop",) for a reply that had already ended
        stopped = False
        failed: NotAvailable | None = None

        def on_chunk(chunk: Any) -> bool:
            nonlocal stopped, failed
            try:
                piece = text_of(chunk)
            except NotAvailable as exc:  # kept for the reply below: an exception must not cross into llama.cpp
                failed = exc
                return True
            if piece:
                conn.send(("piece", piece))
            while conn.poll():
                if conn.recv()[0] in ("stop", "close"):
                    stopped = True
            return stopped

        try:
            handle = server.handle_chat_completions if message[0] == "chat" else server.handle_completions
            result = handle(message[1], on_chunk)
            if failed is not None:
                raise failed
            if isinstance(result, dict) and "error" in result:
                text_of(result)
            conn.send(("done",))
        except NotAvailable as exc:
            conn.send(("error", str(exc)))
        except (EOFError, OSError):
            return
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


if __name__ == "__main__":
    fd, path, count, *loras = sys.argv[1:]
    serve(Connection(int(fd)), path, int(count), loras)
