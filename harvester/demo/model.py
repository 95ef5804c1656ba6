"""The simulated controller's items: folders, jobs, builds and Pipeline stages, and the class names
Jenkins gives them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

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
    # Pipeline shared libraries loaded: (remote URL, commit, branch), checked out before the
    # project, so their git BuildData come first, as on real controllers.
    libraries: list[tuple[str, str, str]] = field(default_factory=list)
    # Archived files' contents, served at <build>/artifact/<path> (artifact manifests).
    files: dict[str, bytes] = field(default_factory=dict)
    # Keys that replace the build JSON's own: a build entry that fails validation.
    broken: dict[str, Any] = field(default_factory=dict)
    building: bool | None = None  # None: same as in_progress (a Pipeline may differ briefly)
    # Plain-text logs by wfapi node id ("" for the build's own console), served from an offset.
    logs: dict[str, str | bytes] = field(default_factory=dict)
    # testReport/api/json (None: the build has no test report, and its actions name none).
    tests: dict[str, Any] | None = None

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
