"""An HTTP server in a daemon thread: the base of the status server, the Jenkins simulator and
the webhook receiver."""

from __future__ import annotations

import ssl
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer a page handler gives the server to send."""

    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


Page = Callable[[str, str, bytes], Reply | None]
"""(method, path with query, body) -> the answer, or None: not this handler's path."""


class QuietHandler(BaseHTTPRequestHandler):
    """Keep-alive and silent. Headers and body go out in two writes: with Nagle's algorithm on,
    the second waits for the client's delayed ACK, 40 ms per keep-alive request on Linux, which
    the benchmark would have counted as the harvester's time."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests and the demo print what matters

    def respond(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-request (it read what it needed and closed) is no error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class ThreadedServer:
    """Subclasses say how requests are handled (:meth:`make_handler`) and where to listen."""

    address: tuple[str, int] = ("127.0.0.1", 0)
    thread_name = "http-server"
    tls: ssl.SSLContext | None = None  # set before start() to serve HTTPS (the TLS tests)

    def __init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None

    @property
    def scheme(self) -> str:
        return "http" if self.tls is None else "https"

    def make_handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self) -> Self:
        self._server = _Server(self.address, self.make_handler())
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(
            target=self._server.serve_forever,
            # stop() waits for the loop to notice: poll often, so stopping takes ms, not 0.5 s.
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=self.thread_name,
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, f"start() the {type(self).__name__} first"
        return int(self._server.server_port)
