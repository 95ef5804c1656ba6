"""A local webhook receiver on loopback, for ``harvester demo``, the tests and the benchmark.

It answers like Harness SEI's custom CI/CD endpoint (its server source was read): only POST
``/v1/custom-cicd``; 401 for a wrong ``Authorization``; 400 ``"X field is missing in request"`` when
a required field is empty; then 202, and a build for an instance GUID it does not know is dropped
after the 202. ``GET /v1/cicd/instances/<guid>`` is 200 for a known instance, 404 otherwise. A
per-window rate limit answers 429 without ``Retry-After``, as Harness does.

It records every POST (headers and JSON body) and can answer from a script of responses (or per
build), so tests can make it fail in the ways real receivers do (503, 429, slow, connection reset).

The SEI Jenkins plugin's channel, ``POST /v1/generic-requests/multipart``, is parsed as the real
receiver parses it: parts are taken by filename (a part without one is dropped), the ``json``
part's ``payload`` is a JSON string, the ``file`` part is a zip whose root entries are logs named by
UUID and whose ``levelops_junit_reports.zip`` holds JUnit XML files with ``<testsuite>`` roots; an
unknown ``request_type`` is a 400, and a key without the Admin role (``admin=False``) a 403. Such a
build is recorded as its payload object, with ``_logs``, ``_junit`` and ``_file`` (whether a
``file`` part came) added.
"""

from __future__ import annotations

import email.policy
import io
import json
import socket
import struct
import threading
import time
import uuid
import zipfile
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler
from typing import Any
from xml.etree import ElementTree

from harvester.util.httpserver import QuietHandler, ThreadedServer

PATH = "/v1/custom-cicd"
MULTIPART_PATH = "/v1/generic-requests/multipart"
PLUGIN_REQUIRED = (
    "job_name",
    "jenkins_instance_name",
    "jenkins_instance_guid",
    "job_full_name",
    "job_normalized_full_name",
    "result",
)
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
        self.admin = True  # False: the API key lacks the Admin role the plugin channel needs
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


def _missing(body: Any, required: tuple[str, ...] = REQUIRED) -> str | None:
    if not isinstance(body, dict):
        return required[0]
    return next((key for key in required if body.get(key) in (None, "")), None)


class BadMultipart(ValueError):
    pass


def parse_plugin_request(content_type: str, raw: bytes) -> dict[str, Any]:
    """The plugin channel's request as the receiver reads it; BadMultipart says what is wrong."""
    message = BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
    )
    if not message.is_multipart():
        raise BadMultipart("not multipart/form-data")
    parts: dict[str, bytes] = {}
    for part in message.iter_parts():
        if not part.get_filename():  # the receiver drops a part without a filename
            continue
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True)
        parts[str(name)] = data if isinstance(data, bytes) else b""
    if "json" not in parts:
        raise BadMultipart("no json part (with a filename)")
    envelope = json.loads(parts["json"])
    if envelope.get("request_type") != "JenkinsPluginJobRunComplete":
        raise BadMultipart(f"unknown request_type {envelope.get('request_type')!r}")
    payload = envelope.get("payload")
    if not isinstance(payload, str):
        raise BadMultipart("payload is not a JSON string")
    body: dict[str, Any] = json.loads(payload)
    logs: dict[str, str] = {}
    junit: list[str] = []
    if "file" in parts:
        with zipfile.ZipFile(io.BytesIO(parts["file"])) as archive:
            for info in archive.infolist():
                if info.is_dir():
                    raise BadMultipart(f"a directory entry in the zip: {info.filename}")
                if info.flag_bits & 0x08:
                    raise BadMultipart(f"a data descriptor in the zip: {info.filename}")
                data = archive.read(info)
                if info.filename == "levelops_junit_reports.zip":
                    with zipfile.ZipFile(io.BytesIO(data)) as reports:
                        for report in reports.infolist():
                            root = ElementTree.fromstring(reports.read(report))  # noqa: S314
                            if root.tag != "testsuite" or not root.get("name"):
                                raise BadMultipart(f"{report.filename}: no named <testsuite>")
                            junit.append(reports.read(report).decode())
                else:
                    uuid.UUID(info.filename)  # raises ValueError: not a log's name
                    logs[info.filename] = data.decode()
    body["_logs"] = logs
    body["_junit"] = junit
    body["_file"] = "file" in parts
    return body


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
        plugin = self.path.split("?", 1)[0] == MULTIPART_PATH
        malformed = None
        if plugin:
            try:
                body: Any = parse_plugin_request(self.headers.get("Content-Type", ""), raw)
            except (BadMultipart, ValueError, zipfile.BadZipFile, ElementTree.ParseError) as exc:
                body, malformed = raw[:200].decode("utf-8", "replace"), str(exc)
        else:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        reply, dropped = self._reply(body, plugin, malformed)
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

    def _reply(
        self, body: Any, plugin: bool = False, malformed: str | None = None
    ) -> tuple[Reply, bool]:
        """The answer SEI would give, or the scripted one; and whether a 202 is dropped."""
        receiver = self.receiver
        if not plugin and self.path.split("?", 1)[0] != PATH:
            return Reply(404, '{"error":"not found"}'), False
        if self.headers.get("Authorization") != receiver.expected_auth:
            return Reply(401, '{"error":"unauthorized"}'), False
        if plugin and not receiver.admin:
            return Reply(403, '{"error":"forbidden: the Admin role is required"}'), False
        if malformed is not None:
            return Reply(400, json.dumps({"error": malformed})), False
        with receiver.lock:
            if receiver.over_limit():
                return Reply(429, '{"error":"rate limit exceeded"}'), False
            required = PLUGIN_REQUIRED if plugin else REQUIRED
            missing = _missing(body, required) if receiver.validate else None
            if missing is not None:
                return Reply(400, json.dumps(f"{missing} field is missing in request")), False
            key = (body.get("job_full_name"), body.get("build_number"))
            if key in receiver.per_build:
                reply = receiver.per_build[key]
            else:
                reply = receiver.script.popleft() if receiver.script else receiver.default
        guid = body.get("jenkins_instance_guid" if plugin else "instance_guid")
        dropped = 200 <= reply.status < 300 and not receiver.knows(guid)
        if plugin and reply == receiver.default:
            reply = Reply(202, '{"response_type":"JenkinsPluginJobRunCompleteResponse"}')
        return reply, dropped
