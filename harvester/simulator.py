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
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from harvester.threaded_server import QuietHandler, ThreadedServer

FREESTYLE = "hudson.model.FreeStyleProject"
PIPELINE = "org.jenkinsci.plugins.workflow.job.WorkflowJob"
FOLDER = "com.cloudbees.hudson.plugins.folder.Folder"
MULTIBRANCH = "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject"
ORG_FOLDER = "jenkins.branch.OrganizationFolder"
BUILD_CLASS = {
    FREESTYLE: "hudson.model.FreeStyleBuild",
    PIPELINE: "org.jenkinsci.plugins.workflow.job.WorkflowRun",
}
JENKINS_VERSION = "2.479.3"
EMPTY_CHANGE_SET: dict[str, Any] = {
    "_class": "hudson.scm.EmptyChangeLogSet",
    "items": [],
    "kind": None,
}


# -- tree= filtering ---------------------------------------------------------------------------


@dataclass
class TreeSpec:
    fields: dict[str, TreeSpec | None]
    ranges: dict[str, tuple[int | None, int | None]]


def parse_tree(text: str) -> TreeSpec:
    spec, rest = _parse_fields(text, 0)
    if rest != len(text):
        raise ValueError(f"bad tree spec at {rest}: {text!r}")
    return spec


def _parse_fields(text: str, i: int) -> tuple[TreeSpec, int]:
    spec = TreeSpec({}, {})
    while i < len(text):
        match = re.compile(r"[A-Za-z0-9_$]+").match(text, i)
        if not match:
            raise ValueError(f"bad tree spec at {i}: {text!r}")
        name = match.group(0)
        i = match.end()
        sub = None
        if i < len(text) and text[i] == "[":
            sub, i = _parse_fields(text, i + 1)
            if i >= len(text) or text[i] != "]":
                raise ValueError(f"unclosed [ in tree spec: {text!r}")
            i += 1
        spec.fields[name] = sub
        if i < len(text) and text[i] == "{":
            end = text.index("}", i)
            body = text[i + 1 : end]
            if "," in body:
                low, high = body.split(",", 1)
                spec.ranges[name] = (int(low) if low else None, int(high) if high else None)
            else:
                spec.ranges[name] = (int(body), int(body) + 1)
            i = end + 1
        if i < len(text) and text[i] == ",":
            i += 1
            continue
        break
    return spec, i


def apply_tree(value: Any, spec: TreeSpec | None) -> Any:
    if spec is None:
        return value
    if isinstance(value, list):
        return [apply_tree(item, spec) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for name, sub in spec.fields.items():
        if name not in value:
            continue
        item = value[name]
        if name in spec.ranges and isinstance(item, list):
            low, high = spec.ranges[name]
            item = item[low:high]
        out[name] = apply_tree(item, sub)
    if "_class" in value:  # Jenkins always sends _class, asked for or not
        out["_class"] = value["_class"]
    return out


# -- the model ---------------------------------------------------------------------------------


@dataclass
class SimStage:
    name: str
    status: str = "SUCCESS"
    start_ms: int = 0
    duration_ms: int = 1000
    steps: list[tuple[str, str, int, int]] = field(default_factory=list)  # name, status, start, dur


@dataclass
class SimBuild:
    number: int
    timestamp: int
    duration: int = 60_000
    result: str | None = "SUCCESS"
    in_progress: bool = False
    causes: list[dict[str, Any]] = field(default_factory=list)
    parameters: list[dict[str, Any]] = field(default_factory=list)
    commits: list[str] = field(default_factory=list)
    repo_url: str | None = None
    branch: str | None = None
    artifacts: list[str] = field(default_factory=list)
    stages: list[SimStage] | None = None
    extra_actions: list[dict[str, Any]] = field(default_factory=list)
    building: bool | None = None  # None: same as in_progress (a Pipeline may differ briefly)

    def finish(self, result: str = "SUCCESS") -> None:
        self.in_progress = False
        self.result = result


@dataclass
class SimJob:
    name: str
    kind: str = FREESTYLE
    children: list[SimJob] = field(default_factory=list)
    builds: list[SimBuild] = field(default_factory=list)  # ascending by number

    def child(self, name: str) -> SimJob:
        for job in self.children:
            if job.name == name:
                return job
        raise KeyError(name)

    @property
    def is_container(self) -> bool:
        return self.kind in (FOLDER, MULTIBRANCH, ORG_FOLDER)


def branch_job_name(branch: str) -> str:
    """Jenkins URL-encodes branch names into job names: ``feature/x`` → ``feature%2Fx``."""
    return quote(branch, safe="")


class Simulator(ThreadedServer):
    """The simulated controller. Mutate ``root`` (and builds) freely; it is served live."""

    thread_name = "jenkins-simulator"

    def __init__(
        self,
        *,
        username: str = "harvester",
        api_token: str = "sim-token",  # noqa: S107 - the simulator's own fake credential
        root_url: str | None = None,
        latency_ms: float = 0.0,
        wfapi_installed: bool = True,
    ) -> None:
        self.root = SimJob("", FOLDER)
        self.username = username
        self.api_token = api_token
        self.configured_root_url = root_url
        self.latency_ms = latency_ms
        self.wfapi_installed = wfapi_installed
        self.counts: Counter[str] = Counter()
        self.paths: list[str] = []
        self.record_paths = True
        self.failures: dict[str, tuple[int, str]] = {}  # path prefix -> (status, body)
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

    def fail(self, path_prefix: str, status: int = 500, body: str = "boom") -> None:
        self.failures[path_prefix] = (status, body)

    def heal(self) -> None:
        self.failures.clear()

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

    # -- JSON ---------------------------------------------------------------------------------------

    def job_json(self, job: SimJob, full: list[str], spec: TreeSpec | None) -> dict[str, Any]:
        """A job's JSON; with a tree spec, only what it asks for is computed (then filtered)."""

        def wanted(name: str) -> bool:
            return spec is None or name in spec.fields

        url = self.root_url + "".join(f"job/{quote(p, safe='')}/" for p in full)
        data: dict[str, Any] = {
            "_class": job.kind,
            "actions": [{}, {"_class": "com.cloudbees.plugins.credentials.ViewCredentialsAction"}],
            "description": None,
            "displayName": unquote(job.name),
            "fullName": "/".join(full),
            "name": job.name,
            "url": url,
        }
        if job.is_container:
            if wanted("jobs"):
                sub = spec.fields["jobs"] if spec is not None else None
                data["jobs"] = [
                    self._child(child, [*full, child.name], sub) for child in job.children
                ]
            return data
        builds = sorted(job.builds, key=lambda b: b.number, reverse=True)
        completed = [b for b in builds if not b.in_progress]
        data.update(
            {
                "buildable": True,
                "color": "blue" if not builds or not builds[0].in_progress else "blue_anime",
                "firstBuild": self._ref(builds[-1], url) if builds else None,
                "lastBuild": self._ref(builds[0], url) if builds else None,
                "lastCompletedBuild": self._ref(completed[0], url) if completed else None,
                "nextBuildNumber": (builds[0].number + 1) if builds else 1,
                "inQueue": False,
            }
        )
        # Ranges ({M,N}) are applied by apply_tree afterwards.
        if wanted("builds"):  # capped at 100, as Jenkins does
            data["builds"] = [self.build_json(job, full, b) for b in builds[:100]]
        if spec is not None and "allBuilds" in spec.fields:  # only when asked for by name
            data["allBuilds"] = [self.build_json(job, full, b) for b in builds]
        return data

    def _child(self, job: SimJob, full: list[str], spec: TreeSpec | None) -> dict[str, Any]:
        if spec is None:  # without a tree, nested items are summaries, as in Jenkins
            url = self.root_url + "".join(f"job/{quote(p, safe='')}/" for p in full)
            return {"_class": job.kind, "name": job.name, "url": url, "color": "blue"}
        return self.job_json(job, full, spec)

    @staticmethod
    def _ref(build: SimBuild, job_url: str) -> dict[str, Any]:
        return {
            "_class": "hudson.model.Run",
            "number": build.number,
            "url": f"{job_url}{build.number}/",
        }

    def build_json(self, job: SimJob, full: list[str], build: SimBuild) -> dict[str, Any]:
        url = (
            self.root_url + "".join(f"job/{quote(p, safe='')}/" for p in full) + f"{build.number}/"
        )
        actions: list[dict[str, Any]] = []
        if build.causes:
            actions.append({"_class": "hudson.model.CauseAction", "causes": build.causes})
        if build.parameters:
            actions.append(
                {"_class": "hudson.model.ParametersAction", "parameters": build.parameters}
            )
        actions.append({})
        if build.repo_url or build.commits:
            sha = build.commits[-1] if build.commits else "0" * 40
            branch = f"refs/remotes/origin/{build.branch or 'main'}"
            actions.append(
                {
                    "_class": "hudson.plugins.git.util.BuildData",
                    "buildsByBranchName": {branch: {"buildNumber": build.number}},
                    "lastBuiltRevision": {"SHA1": sha, "branch": [{"SHA1": sha, "name": branch}]},
                    "remoteUrls": [build.repo_url] if build.repo_url else [],
                    "scmName": "",
                }
            )
        actions.extend(build.extra_actions)
        actions.append({"_class": "org.jenkinsci.plugins.displayurlapi.actions.RunDisplayAction"})
        items = [
            {
                "_class": "hudson.plugins.git.GitChangeSet",
                "commitId": c,
                "msg": f"commit {c[:7]}",
                "affectedPaths": ["README.md"],
            }
            for c in build.commits
        ]
        change_set = {
            "_class": "hudson.plugins.git.GitChangeSetList",
            "items": items,
            "kind": "git",
        }
        data: dict[str, Any] = {
            "_class": BUILD_CLASS.get(job.kind, "hudson.model.FreeStyleBuild"),
            "actions": actions,
            "artifacts": [
                {
                    "displayPath": a.rsplit("/", 1)[-1],
                    "fileName": a.rsplit("/", 1)[-1],
                    "relativePath": a,
                }
                for a in build.artifacts
            ],
            "building": build.in_progress if build.building is None else build.building,
            "description": None,
            "displayName": f"#{build.number}",
            "duration": 0 if build.in_progress else build.duration,
            "estimatedDuration": build.duration,
            "fullDisplayName": f"{' » '.join(unquote(p) for p in full)} #{build.number}",
            "id": str(build.number),
            "inProgress": build.in_progress,
            "keepLog": False,
            "number": build.number,
            "queueId": build.number * 7,
            # A Pipeline can have its result (and building false) while still inProgress.
            "result": build.result if not build.in_progress or build.building is False else None,
            "timestamp": build.timestamp,
            "url": url,
        }
        if job.kind == PIPELINE:
            data["changeSets"] = [change_set] if items else []
        else:
            data["changeSet"] = change_set if items else EMPTY_CHANGE_SET
            data["builtOn"] = ""
        return data

    def stage_json(self, full: list[str], build: SimBuild, node_id: str) -> dict[str, Any] | None:
        """``execution/node/<id>/wfapi/describe`` of a stage: the stage with its steps."""
        stages = self.wfapi_json(full, build, full_stages=True)["stages"]
        return next((s for s in stages if s["id"] == node_id), None)

    def wfapi_json(
        self, full: list[str], build: SimBuild, *, full_stages: bool = True
    ) -> dict[str, Any]:
        base = "/" + "".join(f"job/{quote(p, safe='')}/" for p in full) + f"{build.number}/"
        stages = []
        node_id = 5
        for stage in build.stages or []:
            stage_id = str(node_id)
            node_id += 1
            steps = []
            for name, status, start, duration in stage.steps:
                steps.append(
                    {
                        "_links": {
                            "self": {"href": f"{base}execution/node/{node_id}/wfapi/describe"},
                            "log": {"href": f"{base}execution/node/{node_id}/wfapi/log"},
                        },
                        "id": str(node_id),
                        "name": name,
                        "execNode": "",
                        "status": status,
                        "parameterDescription": f"echo {name} --token=should-never-be-sent",
                        "startTimeMillis": start,
                        "durationMillis": duration,
                        "pauseDurationMillis": 0,
                        "parentNodes": [stage_id],
                    }
                )
                node_id += 1
            stages.append(
                {
                    "_links": {"self": {"href": f"{base}execution/node/{stage_id}/wfapi/describe"}},
                    "id": stage_id,
                    "name": stage.name,
                    "execNode": "",
                    "status": stage.status,
                    "startTimeMillis": stage.start_ms,
                    "durationMillis": stage.duration_ms,
                    "pauseDurationMillis": 0,
                    **({"stageFlowNodes": steps} if full_stages else {}),
                }
            )
        return {
            "_links": {"self": {"href": f"{base}wfapi/describe"}},
            "id": str(build.number),
            "name": f"#{build.number}",
            "status": "IN_PROGRESS"
            if build.in_progress
            else ({"FAILURE": "FAILED"}.get(build.result or "", build.result or "SUCCESS")),
            "startTimeMillis": build.timestamp,
            "endTimeMillis": build.timestamp + build.duration,
            "durationMillis": build.duration,
            "queueDurationMillis": 5,
            "pauseDurationMillis": 0,
            "stages": stages,
        }

    def iter_jobs(self) -> Iterator[tuple[str, SimJob]]:
        def walk(job: SimJob, prefix: list[str]) -> Iterator[tuple[str, SimJob]]:
            for child in job.children:
                path = [*prefix, child.name]
                if child.is_container:
                    yield from walk(child, path)
                else:
                    yield "/".join(path), child

        yield from walk(self.root, [])


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
            time.sleep(sim.latency_ms / 1000)
        expected = "Basic " + base64.b64encode(f"{sim.username}:{sim.api_token}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            self._send(
                401,
                b"<html>Unauthorized</html>",
                "text/html",
                {"WWW-Authenticate": 'Basic realm="Jenkins"'},
            )
            return
        for prefix, (status, body) in list(sim.failures.items()):
            if path.startswith(prefix):
                if status == 200:  # malformed: a 200 whose body is not JSON
                    self._send(200, body.encode(), "text/html")
                else:
                    self._send(status, body.encode(), "text/html")
                return
        try:
            tree = parse_tree(query["tree"][0]) if "tree" in query else None
        except ValueError:
            self._send(400, b"bad tree", "text/plain")
            return
        with sim.lock:  # the model may be mutated by a test while we serve
            self._route(path, query, tree)

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
    if "/execution/node/" in path:
        return "wfapi-node"
    if path.rstrip("/").endswith("/wfapi/describe"):  # python-jenkins adds a trailing slash
        return "wfapi"
    if path.startswith("/crumbIssuer"):
        return "crumb"
    if path == "/api/json":
        return "root"
    if re.search(r"/\d+/api/json$", path):
        return "build"
    if path.endswith("/api/json"):
        return "job"
    return "other"


def demo_instance(sim: Simulator, now_ms: int) -> None:
    """A small controller with one of each kind of job, for ``harvester demo``."""
    minute = 60_000
    app = sim.add("platform/backend/api", PIPELINE)
    for number in range(1, 4):
        start = now_ms - (10 - number) * 10 * minute
        app.builds.append(
            SimBuild(
                number,
                start,
                duration=4 * minute,
                result="FAILURE" if number == 2 else "SUCCESS",
                causes=[
                    {
                        "_class": "hudson.model.Cause$UserIdCause",
                        "userId": "alice",
                        "userName": "Alice",
                        "shortDescription": "Started by user Alice",
                    }
                ],
                parameters=[
                    {
                        "_class": "hudson.model.StringParameterValue",
                        "name": "TARGET",
                        "value": "eu-1",
                    },
                    {
                        "_class": "hudson.model.BooleanParameterValue",
                        "name": "DRY_RUN",
                        "value": False,
                    },
                    {"_class": "hudson.model.PasswordParameterValue", "name": "DB_PASSWORD"},
                ],
                commits=[f"{number:x}" * 40],
                repo_url="https://git.example.com/platform/api.git",
                branch="main",
                artifacts=["dist/api.tar.gz"],
                stages=[
                    SimStage(
                        "Build",
                        "SUCCESS",
                        start + 1000,
                        60_000,
                        [("Shell Script", "SUCCESS", start + 1100, 59_000)],
                    ),
                    SimStage(
                        "Test",
                        "FAILED" if number == 2 else "SUCCESS",
                        start + 61_000,
                        90_000,
                        [
                            (
                                "Shell Script",
                                "FAILED" if number == 2 else "SUCCESS",
                                start + 61_100,
                                89_000,
                            )
                        ],
                    ),
                    SimStage(
                        "Deploy",
                        "NOT_EXECUTED" if number == 2 else "SUCCESS",
                        0 if number == 2 else start + 151_000,
                        0 if number == 2 else 30_000,
                    ),
                ],
            )
        )
    app.builds.append(
        SimBuild(
            4,
            now_ms - minute,
            in_progress=True,
            result=None,
            stages=[SimStage("Build", "IN_PROGRESS", now_ms - minute, 0)],
        )
    )
    nightly = sim.add("platform/nightly-report", FREESTYLE)
    nightly.builds.append(
        SimBuild(
            17,
            now_ms - 50 * minute,
            duration=2 * minute,
            causes=[
                {
                    "_class": "hudson.triggers.TimerTrigger$TimerTriggerCause",
                    "shortDescription": "Started by timer",
                }
            ],
            artifacts=["reports/summary.html"],
        )
    )
    deploy = sim.add("platform/deploy-prod", FREESTYLE)
    deploy.builds.append(
        SimBuild(
            5,
            now_ms - 30 * minute,
            duration=minute,
            causes=[
                {
                    "_class": "hudson.model.Cause$UpstreamCause",
                    "upstreamBuild": 3,
                    "upstreamProject": "platform/backend/api",
                    "upstreamUrl": "job/platform/job/backend/job/api/",
                    "shortDescription": "Started by upstream project",
                }
            ],
        )
    )
    mbp = sim.add("web", MULTIBRANCH)
    for branch, number in (("main", 12), ("feature/login", 3)):
        job = SimJob(branch_job_name(branch), PIPELINE)
        mbp.children.append(job)
        job.builds.append(
            SimBuild(
                number,
                now_ms - 20 * minute,
                duration=3 * minute,
                causes=[
                    {
                        "_class": "jenkins.branch.BranchEventCause",
                        "shortDescription": "Push event to branch",
                    }
                ],
                commits=["9f" * 20],
                repo_url="https://git.example.com/web.git",
                branch=branch,
                stages=[
                    SimStage(
                        "Build",
                        "SUCCESS",
                        now_ms - 20 * minute,
                        100_000,
                        [
                            ("npm ci", "SUCCESS", now_ms - 20 * minute, 50_000),
                            ("npm test", "SUCCESS", now_ms - 19 * minute, 50_000),
                        ],
                    )
                ],
            )
        )
