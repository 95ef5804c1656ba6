"""``/healthz`` and ``/metrics`` on ``server.listen`` (stdlib http.server in a daemon thread)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from harvester.metrics import CONTENT_TYPE, Metrics

HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]


class StatusServer:
    def __init__(self, address: tuple[str, int], metrics: Metrics, health: HealthCheck) -> None:
        handler = type("Handler", (_Handler,), {"metrics": metrics, "health": staticmethod(health)})
        self._server = ThreadingHTTPServer(address, handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="status-server"
        )

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def start(self) -> StatusServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    metrics: Metrics
    health: HealthCheck

    def log_message(self, format: str, *args: Any) -> None:
        pass  # scraped every few seconds: not worth a log line

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/healthz":
            healthy, detail = self.health()
            self._send(200 if healthy else 503, json.dumps(detail).encode(), "application/json")
        elif self.path.split("?")[0] == "/metrics":
            self._send(200, self.metrics.exposition(), CONTENT_TYPE)
        else:
            self._send(404, b"not found: try /healthz or /metrics\n", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
