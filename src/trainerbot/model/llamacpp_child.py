"""The llama.cpp child process (``ServedModel`` in ``llamacpp.py`` starts it):

    python -m trainerbot.model.llamacpp_child <socket fd> <gguf file> <threads> <slots> [lora file…]

It imports only the binding, loads one file and answers requests over the socket (a
``multiprocessing`` connection), up to ``slots`` at once: llama.cpp's continuous batching
decodes every reply in flight in one batch, so members asking together share each pass over
the weights. Every message names its request: ``("complete", rid, request)`` (token IDs the
parent made) or ``("chat", rid, request)`` (messages, through the file's own chat template:
a GGUF of the user's, with no Hugging Face tokenizer beside it) → ``("piece", rid, text)``…
then ``("done", rid)`` or ``("error", rid, message)``; ``("stop", rid)`` while it streams
ends that reply early; ``("close",)`` or the parent's end of the socket closing ends the
process. Each request runs in a thread of its own here (llama.cpp's server queues and
batches them); the parent bounds how many it sends.
"""

from __future__ import annotations

import secrets
import sys
import threading
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


def serve(conn: Connection, gguf: str, threads: int, slots: int, adapters: list[str]) -> None:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = gguf
    params.n_parallel = slots
    params.n_ctx = N_CTX * slots  # split evenly: every slot holds a whole N_CTX conversation
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
        conn.send(("error", None, f"{type(exc).__name__}: {exc}"))
        return
    sending = threading.Lock()  # one writer at a time on the socket
    stopping: dict[int, threading.Event] = {}  # the replies in flight, by request ID

    def send(message: tuple[Any, ...]) -> None:
        with sending:
            conn.send(message)

    def answer(kind: str, rid: int, request: dict[str, Any], stop: threading.Event) -> None:
        failed: NotAvailable | None = None

        def on_chunk(chunk: Any) -> bool:
            nonlocal failed
            try:
                piece = text_of(chunk)
            except NotAvailable as exc:  # kept for the reply below: an exception must not cross into llama.cpp
                failed = exc
                return True
            if piece:
                send(("piece", rid, piece))
            return stop.is_set()

        try:
            handle = server.handle_chat_completions if kind == "chat" else server.handle_completions
            result = handle(request, on_chunk)
            if failed is not None:
                raise failed
            if isinstance(result, dict) and "error" in result:
                text_of(result)
            send(("done", rid))
        except NotAvailable as exc:
            send(("error", rid, str(exc)))
        except (EOFError, OSError):  # the parent has gone
            stop.set()
        except Exception as exc:
            send(("error", rid, f"{type(exc).__name__}: {exc}"))
        finally:
            stopping.pop(rid, None)

    send(("ready",))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the parent has gone
            break
        if message[0] == "close":
            break
        if message[0] == "stop":
            event = stopping.get(message[1])
            if event is not None:  # else a late stop for a reply that had already ended
                event.set()
            continue
        if message[0] in ("complete", "chat"):
            _, rid, request = message
            stopping[rid] = threading.Event()
            threading.Thread(target=answer, args=(message[0], rid, request, stopping[rid]), daemon=True,
                             name=f"reply-{rid}").start()
    for event in list(stopping.values()):  # end the replies in flight before the process ends
        event.set()


if __name__ == "__main__":
    fd, path, count, slots, *loras = sys.argv[1:]
    serve(Connection(int(fd)), path, int(count), int(slots), loras)
