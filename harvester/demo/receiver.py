"""A local webhook receiver on loopback, for ``harvester demo``, the tests and the benchmark.

It answers like Harness SEI's custom CI/CD endpoint (its server source was read): only POST
``/v1/custom-cicd``; 401 for a wrong ``Authorization``; 400 ``"X field is missing in request"`` when
a required field is empty; then 202, and a build for an instance GUID it does not know is dropped
after the 202. ``GET /v1/cicd/instances/<guid>`` is 200 for a known instance, 404 otherwise. A
per-window rate limit answers 429 without ``Retry-After``, as Harness does.

It records every POST (headers and JSON body) and can answer from a script of responses (or per
build), so tests can make it fail in the ways real receivers do (503, 429, slow, connection reset).
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from harvester.util.httpserver import QuietHandler, ThreadedServer

PATH = "/v1/custom-cicd"
INSTANCES_PATH = "/v1/cicd/instances/"
REQUIRED = (
    "pipeline",
    "instance_name",
    "instance_guid",
    "job_full_name",
    "qualified_name",
    "result",
)


@dataclass(frozen=True)
class Reply:
    status: int = 202
    body: str = '{"status":"accepted"}'
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0
    reset: bool = False  # drop the connection without answering


@dataclass
class Received:
    headers: dict[str, str]
    body: Any
    answered: str  # the status sent back, or "reset"
    at: float = field(default_factory=time.time)  # wall clock: the benchmark measures latency
    dropped: bool = False  # 202, but for an instance it does not know: not kept


class Receiver(ThreadedServer):
    thread_name = "receiver"

    def __init__(
        self,
        token: str = "demo-token",  # noqa: S107
        auth_scheme: str = "Bearer",
        *,
        instances: Iterable[str] | None = None,
        limit: tuple[int, float] | None = None,
    ) -> None:
        self.expected_auth = f"{auth_scheme} {token}"
        # None: every instance GUID is known; else only these.
        self.instances = None if instances is None else set(instances)
        # (requests, seconds): at most this many POSTs per fixed window, then 429.
        self.limit = limit
        self.validate = True  # False: accept any body, as a lax compatible receiver would
        self._window_start = 0.0
        self._window_count = 0
        self.received: list[Received] = []
        self.script: deque[Reply] = deque()
        self.per_build: dict[tuple[str, int], Reply] = {}  # (job_full_name, build_number)
        self.default = Reply()
        self.lock = threading.Lock()
        super().__init__()

    def make_handler(self) -> type[BaseHTTPRequestHandler]:
        return type("Handler", (_Handler,), {"receiver": self})

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{PATH}"

    def then(self, *replies: Reply) -> Receiver:
        with self.lock:
            self.script.extend(replies)
        return self

    def knows(self, guid: object) -> bool:
        return self.instances is None or guid in self.instances

    def accepted(self) -> list[Any]:
        """Bodies answered with a 2xx and kept (what SEI would store)."""
        with self.lock:
            return [r.body for r in self.received if r.answered.startswith("2") and not r.dropped]

    def accepted_keys(self) -> list[tuple[str, int]]:
        return [(b["job_full_name"], b["build_number"]) for b in self.accepted()]

    def throttled(self) -> int:
        with self.lock:
            return sum(1 for r in self.received if r.answered == "429")

    def over_limit(self) -> bool:
        """Count one POST against the window; True when it is over the limit."""
        if self.limit is None:
            return False
        most, seconds = self.limit
        now = time.monotonic()
        if now - self._window_start >= seconds:
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        return self._window_count > most


def _missing(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "pipeline"
    return next((key for key in REQUIRED if body.get(key) in (None, "")), None)


class _Handler(QuietHandler):
    receiver: Receiver

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == self.receiver.expected_auth:
            return True
        self.respond(401, b'{"error":"unauthorized"}', "application/json")
        return False

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if not path.startswith(INSTANCES_PATH):
            self.respond(404, b'{"error":"not found"}', "application/json")
            return
        if not self._authorized():
            return
        guid = path.removeprefix(INSTANCES_PATH).strip("/")
        if self.receiver.knows(guid):
            self.respond(200, json.dumps({"id": guid}).encode(), "application/json")
        else:
            self.respond(404, b'{"error":"no such instance"}', "application/json")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        receiver = self.receiver
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        reply, dropped = self._reply(body)
        if reply.delay_seconds:
            time.sleep(reply.delay_seconds)
        if reply.reset:
            # SO_LINGER 0: close sends a TCP RST, as a crashing proxy would.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
        with receiver.lock:
            answered = "reset" if reply.reset else str(reply.status)
            receiver.received.append(Received(headers, body, answered, dropped=dropped))
        if reply.reset:
            return
        self.respond(reply.status, reply.body.encode(), "application/json", reply.headers)

    def _reply(self, body: Any) -> tuple[Reply, bool]:
        """The answer SEI would give, or the scripted one; and whether a 202 is dropped."""
        receiver = self.receiver
        if self.path.split("?", 1)[0] != PATH:
            return Reply(404, '{"error":"not found"}'), False
        if self.headers.get("Authorization") != receiver.expected_auth:
            return Reply(401, '{"error":"unauthorized"}'), False
        with receiver.lock:
            if receiver.over_limit():
                return Reply(429, '{"error":"rate limit exceeded"}'), False
            missing = _missing(body) if receiver.validate else None
            if missing is not None:
                return Reply(400, json.dumps(f"{missing} field is missing in request")), False
            key = (body.get("job_full_name"), body.get("build_number"))
            if key in receiver.per_build:
                reply = receiver.per_build[key]
            else:
                reply = receiver.script.popleft() if receiver.script else receiver.default
        dropped = 200 <= reply.status < 300 and not receiver.knows(body.get("instance_guid"))
        return reply, dropped
