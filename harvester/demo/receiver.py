"""A local webhook receiver on loopback, for ``harvester demo``, the tests and the benchmark.

It records every POST (headers and JSON body) and answers from a script of responses, so tests can
make it fail in the ways real receivers do (503, 429 with Retry-After, slow, connection reset)."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from harvester.util.httpserver import QuietHandler, ThreadedServer


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


class Receiver(ThreadedServer):
    thread_name = "receiver"

    def __init__(self, token: str = "demo-token", auth_scheme: str = "Bearer") -> None:  # noqa: S107
        self.expected_auth = f"{auth_scheme} {token}"
        self.received: list[Received] = []
        self.script: deque[Reply] = deque()
        self.default = Reply()
        self.lock = threading.Lock()
        self.probes: list[dict[str, str]] = []  # headers of HEAD requests (`check`)
        super().__init__()

    def make_handler(self) -> type[BaseHTTPRequestHandler]:
        return type("Handler", (_Handler,), {"receiver": self})

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/v1/custom-cicd"

    def then(self, *replies: Reply) -> Receiver:
        with self.lock:
            self.script.extend(replies)
        return self

    def accepted(self) -> list[Any]:
        """Bodies answered with a 2xx (what the receiver kept)."""
        with self.lock:
            return [r.body for r in self.received if r.answered.startswith("2")]

    def accepted_keys(self) -> list[tuple[str, int]]:
        return [(b["job_full_name"], b["build_number"]) for b in self.accepted()]


class _Handler(QuietHandler):
    receiver: Receiver

    def do_HEAD(self) -> None:
        with self.receiver.lock:
            self.receiver.probes.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        receiver = self.receiver
        with receiver.lock:
            reply = receiver.script.popleft() if receiver.script else receiver.default
        if self.headers.get("Authorization") != receiver.expected_auth:
            reply = Reply(401, '{"error":"unauthorized"}')
        if reply.delay_seconds:
            time.sleep(reply.delay_seconds)
        headers = {k.lower(): v for k, v in self.headers.items()}
        if reply.reset:
            # SO_LINGER 0: close sends a TCP RST, as a crashing proxy would.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with receiver.lock:
            answered = "reset" if reply.reset else str(reply.status)
            receiver.received.append(Received(headers, body, answered))
        if reply.reset:
            return
        self.respond(reply.status, reply.body.encode(), "application/json", reply.headers)
