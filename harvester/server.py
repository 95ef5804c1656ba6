"""``/healthz`` and ``/metrics`` on ``server.listen`` (stdlib http.server in a daemon thread)."""

from __future__ import annotations

import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from harvester.metrics import CONTENT_TYPE, Metrics
from harvester.threaded_server import QuietHandler, ThreadedServer

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


class _Handler(QuietHandler):
    metrics: Metrics
    health: HealthCheck

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/healthz":
            healthy, detail = self.health()
            self.respond(200 if healthy else 503, json.dumps(detail).encode(), "application/json")
        elif self.path.split("?")[0] == "/metrics":
            self.respond(200, self.metrics.exposition(), CONTENT_TYPE)
        else:
            self.respond(404, b"not found: try /healthz or /metrics\n", "text/plain")
