"""A Jenkins simulator on loopback, for the tests, ``harvester demo`` and the benchmark.

It serves the endpoints the harvester uses in the shapes real controllers send (modelled on the
fixtures in tests/fixtures): ``_class`` everywhere, empty ``{}`` actions, URL-encoded branch names,
``builds`` capped at 100 and ``allBuilds`` only when a ``tree=`` asks for it, ``tree=`` filtering with
``{M,N}`` ranges, password parameters without a value, and ``url`` fields built from a configurable
root URL that may be wrong (as behind a proxy). It checks HTTP Basic auth and counts requests by kind.
Failures can be injected per path (status, malformed body, delay).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from harvester.demo.model import (
    FOLDER,
    FREESTYLE,
    JENKINS_VERSION,
    PIPELINE,
    SimBuild,
    SimJob,
)
from harvester.demo.render import JenkinsJson
from harvester.demo.tree import TreeSpec, apply_tree, parse_tree
from harvester.util.httpserver import QuietHandler, ThreadedServer


class Simulator(JenkinsJson, ThreadedServer):
    """The simulated controller. Mutate ``root`` (and builds) freely; it is served live."""

    thread_name = "jenkins-simulator"

    def __init__(
        self,
        *,
        username: str = "harvester",
        api_token: str = "sim-token",  # noqa: S107 - the simulator's own fake credential
        root_url: str | None = None,
        latency_ms: float = 0.0,
        capacity: int | None = None,
        wfapi_installed: bool = True,
    ) -> None:
        self.root = SimJob("", FOLDER)
        self.username = username
        self.api_token = api_token
        self.configured_root_url = root_url
        self.latency_ms = latency_ms
        # Requests served at once at latency_ms; beyond, each takes longer in proportion (a
        # controller whose request threads are all busy): latency doubles at 2 x capacity.
        self.capacity = capacity
        self.in_flight = 0
        self.served_ms: list[float] = []  # the latency each request was served with
        self.wfapi_installed = wfapi_installed
        self.counts: Counter[str] = Counter()
        self.paths: list[str] = []
        self.record_paths = True
        # path prefix -> (status, body, headers)
        self.failures: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        self.delays: dict[str, float] = {}  # path prefix -> seconds
        self.lock = threading.Lock()
        super().__init__()

    # -- building the instance ------------------------------------------------------------------

    def add(self, path: str, kind: str = FREESTYLE) -> SimJob:
        """Add a job at ``a/b/c`` (creating folders on the way; names as Jenkins has them)."""
        parent = self.root
        parts = path.split("/")
        for part in parts[:-1]:
            try:
                parent = parent.child(part)
            except KeyError:
                folder = SimJob(part, FOLDER)
                parent.children.append(folder)
                parent = folder
        job = SimJob(parts[-1], kind)
        parent.children.append(job)
        return job

    def job(self, path: str) -> SimJob:
        node = self.root
        for part in path.split("/"):
            node = node.child(part)
        return node

    def fail(
        self,
        path_prefix: str,
        status: int = 500,
        body: str | bytes = "boom",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer every GET under ``path_prefix`` with ``status`` and ``body`` (a 200: a
        malformed answer) and ``headers`` (e.g. a Content-Encoding the body does not match)."""
        raw = body.encode() if isinstance(body, str) else body
        self.failures[path_prefix] = (status, raw, headers or {})

    def slow(self, path_prefix: str, seconds: float) -> None:
        """Answer every GET under ``path_prefix`` ``seconds`` late (a discovery that takes long)."""
        self.delays[path_prefix] = seconds

    def heal(self) -> None:
        self.failures.clear()
        self.delays.clear()

    def reset_counts(self) -> None:
        with self.lock:
            self.counts.clear()
            self.paths.clear()

    # -- serving ----------------------------------------------------------------------------------

    def make_handler(self) -> type[BaseHTTPRequestHandler]:
        return type("Handler", (_Handler,), {"sim": self})

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/"

    @property
    def root_url(self) -> str:
        return self.configured_root_url or self.url


class _Handler(QuietHandler):
    sim: Simulator

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.respond(
            status,
            body,
            f"{content_type};charset=utf-8",
            {"X-Jenkins": JENKINS_VERSION, **(headers or {})},
        )

    def _json(self, value: Any) -> None:
        self._send(200, json.dumps(value, separators=(",", ":")).encode())

    def do_POST(self) -> None:
        self._count("post")
        self._send(405, b"harvester never POSTs to Jenkins", "text/plain")

    def _count(self, kind: str) -> None:
        with self.sim.lock:
            self.sim.counts[kind] += 1
            if self.sim.record_paths:
                self.sim.paths.append(self.path)

    def do_GET(self) -> None:
        sim = self.sim
        split = urlsplit(self.path)
        path = split.path
        query = parse_qs(split.query)
        kind = _kind(path)
        self._count(kind)
        if sim.latency_ms:
            with sim.lock:
                sim.in_flight += 1
                load = sim.in_flight / sim.capacity if sim.capacity else 1.0
            delay_ms = sim.latency_ms * max(1.0, load)
            try:
                time.sleep(delay_ms / 1000)
            finally:
                with sim.lock:
                    sim.in_flight -= 1
                    sim.served_ms.append(delay_ms)
        for prefix, seconds in list(sim.delays.items()):
            if path.startswith(prefix):
                time.sleep(seconds)
        expected = "Basic " + base64.b64encode(f"{sim.username}:{sim.api_token}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            self._send(
                401,
                b"<html>Unauthorized</html>",
                "text/html",
                {"WWW-Authenticate": 'Basic realm="Jenkins"'},
            )
            return
        for prefix, (status, body, headers) in list(sim.failures.items()):
            if path.startswith(prefix):
                self._send(status, body, "text/html", headers)
                return
        try:
            tree = parse_tree(query["tree"][0]) if "tree" in query else None
        except ValueError:
            self._send(400, b"bad tree", "text/plain")
            return
        with sim.lock:  # the model may be mutated by a test while we serve
            self._route(path, query, tree)

    def _log(self, build: SimBuild, node: str, query: dict[str, list[str]]) -> None:
        """Jenkins' progressiveText (stapler's LargeText): the log from ``start`` with its size in
        X-Text-Size; a start past the end is taken for a rolled-over log, from 0 again."""
        text = build.logs.get(node)
        if text is None:
            self._send(404, b"<html>Not Found</html>", "text/html")
            return
        data = text.encode() if isinstance(text, str) else text
        try:
            start = int(query.get("start", ["0"])[0])
        except ValueError:
            self._send(400, b"bad start", "text/plain")
            return
        if start > len(data) or start < 0:
            start = 0
        headers = {"X-Text-Size": str(len(data))}
        if build.in_progress:
            headers["X-More-Data"] = "true"
        self._send(200, data[start:], "text/plain", headers)

    def _route(self, path: str, query: dict[str, list[str]], tree: TreeSpec | None) -> None:
        sim = self.sim
        if path == "/whoAmI/api/json":
            self._json(
                {
                    "_class": "hudson.security.WhoAmI",
                    "anonymous": False,
                    "authenticated": True,
                    "name": sim.username,
                }
            )
            return
        if path == "/crumbIssuer/api/json":
            self._json(
                {
                    "_class": "hudson.security.csrf.DefaultCrumbIssuer",
                    "crumb": "c",
                    "crumbRequestField": "Jenkins-Crumb",
                }
            )
            return
        parts = [p for p in path.split("/") if p]
        full: list[str] = []
        node = sim.root
        i = 0
        while i + 1 < len(parts) and parts[i] == "job":
            name = unquote(parts[i + 1])  # the URL segment decodes to the job's name
            try:
                node = node.child(name)
            except KeyError:
                self._send(404, b"<html>Not Found</html>", "text/html")
                return
            full.append(name)
            i += 2
        rest = parts[i:]
        if rest == ["api", "json"]:
            if node is sim.root:
                value: Any = {
                    "_class": "hudson.model.Hudson",
                    "mode": "NORMAL",
                    "nodeDescription": "the Jenkins simulator",
                    "url": sim.root_url,
                    "useCrumbs": True,
                }
                if tree is None or "jobs" in tree.fields:
                    sub = tree.fields["jobs"] if tree is not None else None
                    value["jobs"] = [sim._child(c, [c.name], sub) for c in node.children]
            else:
                value = sim.job_json(node, full, tree)
            self._json(apply_tree(value, tree))
            return
        if rest and rest[0].isdigit() and not node.is_container:
            number = int(rest[0])
            build = next((b for b in node.builds if b.number == number), None)
            if build is None:
                self._send(404, b"<html>Not Found</html>", "text/html")
                return
            if rest[1:] == ["api", "json"]:
                self._json(apply_tree(sim.build_json(node, full, build), tree))
                return
            if len(rest) > 2 and rest[1] == "artifact":
                content = build.files.get("/".join(unquote(part) for part in rest[2:]))
                if content is None:
                    self._send(404, b"<html>Not Found</html>", "text/html")
                else:
                    self._send(200, content, "application/octet-stream")
                return
            log_of = None
            if rest[1:] == ["logText", "progressiveText"]:
                log_of = ""
            elif rest[1:3] == ["execution", "node"] and rest[4:] == [
                "log",
                "logText",
                "progressiveText",
            ]:
                log_of = rest[3]
            if log_of is not None:
                self._log(build, log_of, query)
                return
            if rest[1:] == ["testReport", "api", "json"]:
                if build.tests is None:
                    self._send(404, b"<html>Not Found</html>", "text/html")
                else:
                    self._json(apply_tree(build.tests, tree))
                return
            if sim.wfapi_installed and node.kind == PIPELINE:
                if rest[1:] == ["wfapi", "describe"]:
                    # Like the plugin: steps (stageFlowNodes) only with fullStages=true.
                    full_stages = query.get("fullStages", ["false"])[0] == "true"
                    self._json(sim.wfapi_json(full, build, full_stages=full_stages))
                    return
                if (
                    len(rest) == 6
                    and rest[1:3] == ["execution", "node"]
                    and rest[4:]
                    == [
                        "wfapi",
                        "describe",
                    ]
                ):
                    stage = sim.stage_json(full, build, rest[3])
                    if stage is not None:
                        self._json(stage)
                        return
        if rest == [] and node is sim.root:
            self._send(200, b"<html>Dashboard</html>", "text/html")
            return
        self._send(404, b"<html>Not Found</html>", "text/html")


def _kind(path: str) -> str:
    if path.endswith("/progressiveText"):
        return "log"
    if "/testReport/" in path:
        return "tests"
    if "/execution/node/" in path:
        return "wfapi-node"
    if path.rstrip("/").endswith("/wfapi/describe"):  # python-jenkins adds a trailing slash
        return "wfapi"
    if path.startswith("/crumbIssuer"):
        return "crumb"
    if re.search(r"/\d+/artifact/", path):
        return "artifact"
    if path == "/api/json":
        return "root"
    if re.search(r"/\d+/api/json$", path):
        return "build"
    if path.endswith("/api/json"):
        return "job"
    return "other"
