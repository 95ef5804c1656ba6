"""``/healthz`` and ``/metrics`` on ``server.listen`` (stdlib http.server in a daemon thread)."""

from __future__ import annotations

import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from harvester.metrics import CONTENT_TYPE, Metrics
from harvester.threaded_server import ThreadedServer

HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]


class StatusServer(ThreadedServer):
    thread_name = "status-server"

    def __init__(self, address: tuple[str, int], metrics: Metrics, health: HealthCheck) -> None:
        super().__init__()
        self.address = address
        self.metrics = metrics
        self.health = health

    def make_handler(self) -> type[BaseHTTPRequestHandler]:
        return type(
            "Handler", (_Handler,), {"metrics": self.metrics, "health": staticmethod(self.health)}
        )


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
