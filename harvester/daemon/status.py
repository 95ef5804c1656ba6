"""The HTTP server on ``server.listen`` (stdlib http.server in a daemon thread): ``/livez`` (the
process and its scheduler are alive), ``/readyz`` and ``/healthz`` (the health of the last
cycles), ``/metrics``, and every other path to the status page it is given."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

from harvester.daemon.metrics import CONTENT_TYPE, Metrics
from harvester.util.httpserver import Page, QuietHandler, ThreadedServer
from harvester.util.timeparse import iso_utc

log = logging.getLogger("harvester.status")

HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]


class Health:
    """What /healthz reports: 503 with the reason when the last cycle could not
    reach Jenkins, when the webhook has failed every delivery since its last success, or when no
    cycle succeeded within three intervals. One job's failure alone does not make it unhealthy."""

    def __init__(self, interval_seconds: float, role: Callable[[], str] | None = None) -> None:
        self.interval = interval_seconds
        self.started = datetime.now(tz=UTC)
        self.last_success: datetime | None = None
        self.last_problem: str | None = None
        self.lock = threading.Lock()
        # A daemon's role: a standby is healthy while it waits; it runs no cycle.
        self.role = role

    def became_active(self) -> None:
        """A takeover: the new active replica gets the first cycles' grace, as at start."""
        with self.lock:
            self.started = datetime.now(tz=UTC)
            self.last_success = None
            self.last_problem = None

    def record(self, finished_at: datetime, problem: str | None) -> None:
        """How the last cycle went: ``problem`` None, or what made it fail."""
        with self.lock:
            self.last_problem = problem
            if problem is None:
                self.last_success = finished_at

    def __call__(self) -> tuple[bool, dict[str, object]]:
        role = None if self.role is None else self.role()
        if role == "standby":
            return True, {"status": "ok", "role": role}
        with self.lock:
            now = datetime.now(tz=UTC)
            limit = 3 * self.interval
            reference = self.last_success or self.started
            # Just started counts as a success: the first cycles get the same grace.
            stale = (now - reference).total_seconds() > limit
            reason = self.last_problem
            if reason is None and stale:
                reason = f"no successful cycle in the last {limit:.0f} s"
            detail: dict[str, object] = {
                "status": "ok" if reason is None else "unhealthy",
                "last_success": iso_utc(self.last_success),
            }
            if reason is not None:
                detail["reason"] = reason
            if role is not None:
                detail["role"] = role
            return reason is None, detail


class Liveness:
    """What /livez reports: 200 while the scheduler dispatches its liveness job (every 5 s),
    whatever Jenkins or the webhook do. A liveness probe that restarted the pod during a Jenkins
    maintenance would fix nothing; one that finds the process wedged does."""

    STALE_SECONDS = 30.0

    def __init__(self) -> None:
        self.last = time.monotonic()

    def beat(self) -> None:
        self.last = time.monotonic()

    def __call__(self) -> tuple[bool, dict[str, object]]:
        quiet = time.monotonic() - self.last
        if quiet > self.STALE_SECONDS:
            return False, {"status": "dead", "reason": f"the scheduler is silent for {quiet:.0f} s"}
        return True, {"status": "alive"}


class StatusServer(ThreadedServer):
    thread_name = "status-server"

    def __init__(
        self,
        address: tuple[str, int],
        metrics: Metrics,
        health: HealthCheck,
        liveness: HealthCheck | None = None,
        page: Page | None = None,
    ) -> None:
        super().__init__()
        self.address = address
        self.metrics = metrics
        self.page = page
        self.probes: dict[str, HealthCheck] = {
            "/readyz": health,
            "/healthz": health,  # the name it had before /readyz: kept
            "/livez": liveness or (lambda: (True, {"status": "alive"})),
        }

    def make_handler(self) -> type[BaseHTTPRequestHandler]:
        return type(
            "Handler",
            (_Handler,),
            {
                "metrics": self.metrics,
                "probes": self.probes,
                "page": None if self.page is None else staticmethod(self.page),
            },
        )


MAX_BODY = 8192  # the status page's forms are a few fields


class _Handler(QuietHandler):
    metrics: Metrics
    probes: dict[str, HealthCheck]
    page: Page | None

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        probe = self.probes.get(path)
        if probe is not None:
            healthy, detail = probe()
            self.respond(200 if healthy else 503, json.dumps(detail).encode(), "application/json")
        elif path == "/metrics":
            self.respond(200, self.metrics.exposition(), CONTENT_TYPE)
        else:
            self._to_page("GET", b"")

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True
            self.respond(413, b"a form of at most 8 KiB\n", "text/plain")
            return
        self._to_page("POST", self.rfile.read(length))

    def _to_page(self, method: str, body: bytes) -> None:
        reply = None
        if self.page is not None:
            try:
                reply = self.page(method, self.path, body)
            except Exception:  # a bug in a view must not end the server thread silently
                log.exception("the status page failed on %s %s", method, self.path[:200])
                self.respond(500, b"the status page failed; see the daemon's log\n", "text/plain")
                return
        if reply is None:
            self.respond(
                404,
                b"not found: try /, /api/overview, /livez, /readyz, /healthz or /metrics\n",
                "text/plain",
            )
            return
        self.respond(reply.status, reply.body, reply.content_type, reply.headers)
