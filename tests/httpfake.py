"""A real HTTP server on 127.0.0.1 for the remote services the bot can use (Google's speech
services, an OpenAI-compatible server): tests give it a handler that answers with the
service's real request and response shapes, and read back what the bot sent."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Response:
    status: int = 200
    body: bytes | Iterator[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


Handler = Callable[[Request], Response]


@dataclass
class FakeServer:
    url: str
    requests: list[Request]


@contextmanager
def serve(handler: Handler) -> Iterator[FakeServer]:
    seen: list[Request] = []
    stop = threading.Event()

    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                body = b""
                while True:
                    size = int(self.rfile.readline().strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    body += self.rfile.read(size)
                    self.rfile.readline()
            else:
                body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            request = Request(
                self.command, parts.path, parse_qs(parts.query), {k.lower(): v for k, v in self.headers.items()}, body
            )
            seen.append(request)
            response = handler(request)
            if response.delay_s:
                stop.wait(response.delay_s)
            try:
                self._send(response)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                self.close_connection = True

        def _send(self, response: Response) -> None:
            self.send_response(response.status)
            for key, value in response.headers.items():
                self.send_header(key, value)
            if isinstance(response.body, bytes):
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                self.wfile.write(response.body)
            else:  # streamed: chunked transfer encoding, flushed piece by piece
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for piece in response.body:
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        do_GET = do_POST = do_DELETE = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FakeServer(f"http://127.0.0.1:{server.server_address[1]}", seen)
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
