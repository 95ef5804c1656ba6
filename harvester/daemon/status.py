"""``/healthz`` and ``/metrics`` on ``server.listen`` (stdlib http.server in a daemon thread)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

from harvester.daemon.metrics import CONTENT_TYPE, Metrics
from harvester.util.httpserver import QuietHandler, ThreadedServer
from harvester.util.timeparse import iso_utc

HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]


class Health:
    """What /healthz reports: healthy while the last cycle succeeded within three intervals."""

    def __init__(self, interval_seconds: float) -> None:
        self.interval = interval_seconds
        self.started = datetime.now(tz=UTC)
        self.last_success: datetime | None = None
        self.last_problem: str | None = "no cycle has finished yet"
        self.lock = threading.Lock()

    def record(self, succeeded: bool, finished_at: datetime, summary: str) -> None:
        """How the last cycle went (its summary names the problem when it failed)."""
        with self.lock:
            if succeeded:
                self.last_success = finished_at
                self.last_problem = None
            else:
                self.last_problem = summary

    def __call__(self) -> tuple[bool, dict[str, object]]:
        with self.lock:
            now = datetime.now(tz=UTC)
            limit = 3 * self.interval
            reference = self.last_success
            fresh = reference is not None and (now - reference).total_seconds() <= limit
            # Just started: give the first cycles the same grace before calling it unhealthy.
            starting = reference is None and (now - self.started).total_seconds() <= limit
            detail: dict[str, object] = {
                "status": "ok" if fresh or starting else "unhealthy",
                "last_success": iso_utc(reference),
                "problem": self.last_problem,
            }
            if not (fresh or starting):
                detail["reason"] = f"no successful cycle in the last {limit:.0f} s" + (
                    f"; last problem: {self.last_problem}" if self.last_problem else ""
                )
            return fresh or starting, detail


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
