"""An HTTP server in a daemon thread: the base of the status server, the Jenkins simulator and
the webhook receiver."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class ThreadedServer:
    """Subclasses say how requests are handled (:meth:`make_handler`) and where to listen."""

    address: tuple[str, int] = ("127.0.0.1", 0)
    thread_name = "http-server"

    def __init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None

    def make_handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self) -> Self:
        self._server = ThreadingHTTPServer(self.address, self.make_handler())
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, daemon=True, name=self.thread_name
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
