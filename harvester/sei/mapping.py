"""Jenkins JSON → SEI payload. Pure: data in, payload out; no I/O, clock or env.

Where does a payload field come from? Each one is computed in :func:`map_build`, from the inbound
models of :mod:`harvester.jenkins.models`: the required fields first, then the optional ones, each
set only when it has a value (the payload is a plain dict, ``sei.payload.Payload``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import lru_cache

from harvester.jenkins.models import Build, Cause, FlowNode, PipelineRun, simple_class_name
from harvester.jenkins.models import Stage as StageNode
from harvester.sei.artifacts import file_artifacts
from harvester.sei.jobref import JobRef
from harvester.sei.payload import ArtifactRef, JobRun, Payload, RunParameter, Stage, Step, Trigger
from harvester.sei.scm import branch_name, commit_ids, project_build_data, repo_url
from harvester.util import names

JENKINS_RESULTS = frozenset({"SUCCESS", "UNSTABLE", "FAILURE", "NOT_BUILT", "ABORTED"})
SENT_PARAMETER_TYPES = frozenset(
    {"StringParameterValue", "TextParameterValue", "BooleanParameterValue", "ChoiceParameterValue"}
)
REDACTED = "********"
SCM_CAUSES = frozenset({"SCMTriggerCause", "GitHubPushCause", "BranchEventCause"})
SCM_CAUSE_SUFFIXES = ("PushCause", "HookCause", "WebHookCause")
MAX_UPSTREAM_LEVELS = 10

# wfapi status → (result, state) of a stage or step (table).
NODE_STATUS = {
    "SUCCESS": ("succeeded", "completed"),
    "UNSTABLE": ("succeededWithIssues", "completed"),
    "FAILED": ("failed", "completed"),
    "ABORTED": ("canceled", "completed"),
    "NOT_EXECUTED": ("skipped", "completed"),
    "IN_PROGRESS": ("unknown", "inProgress"),
    "PAUSED_PENDING_INPUT": ("unknown", "inProgress"),
}
# Any other status: the build has finished, so the node has too, with an outcome we cannot name.
UNKNOWN_NODE_STATUS = ("unknown", "completed")


@dataclass(frozen=True, slots=True)
class MappingRules:
    """The part of the configuration the mapping needs (``sei.*`` identity and ``mapping.*``)."""

    instance_name: str
    instance_guid: str
    instance_url: str  # ends in exactly one '/'
    result_map: dict[str, str]
    cd_jobs: tuple[str, ...] = ()
    redact_parameters: tuple[str, ...] = ()
    library_remotes: tuple[str, ...] = ()
    # rest: names as Jenkins' REST API has them; plugin: the SEI plugin's directory paths.
    job_identity: str = "rest"


# -- causes ------------------------------------------------------------------------------------


def is_scm_cause(simple_name: str | None) -> bool:
    if simple_name is None:
        return False
    return simple_name in SCM_CAUSES or simple_name.endswith(SCM_CAUSE_SUFFIXES)


def is_upstream_cause(cause: Cause) -> bool:
    name = cause.simple_name or ""
    return name.endswith("UpstreamCause") and cause.upstreamProject is not None


def user_of(cause: Cause) -> str:
    return cause.userId if cause.userId is not None else "anonymous"


@dataclass(frozen=True, slots=True)
class CauseStep:
    """What one level of the cause walk found: a user, or where to look next."""

    user: str | None
    upstream: tuple[str, int] | None
    scm_seen: bool


def examine_causes(causes: Sequence[Cause]) -> CauseStep:
    """One level of the user_id walk: the first UserIdCause's user, else the first
    UpstreamCause to follow; and whether an SCM cause is among them."""
    scm_seen = any(is_scm_cause(cause.simple_name) for cause in causes)
    for cause in causes:
        if cause.simple_name == "UserIdCause":
            return CauseStep(user_of(cause), None, scm_seen)
    for cause in causes:
        if is_upstream_cause(cause) and cause.upstreamBuild is not None:
            assert cause.upstreamProject is not None
            return CauseStep(None, (cause.upstreamProject, cause.upstreamBuild), scm_seen)
    return CauseStep(None, None, scm_seen)


@dataclass
class CauseWalk:
    """The cause walk as a small state machine, so the I/O (fetching upstream builds) stays with
    the caller: feed it causes until :attr:`next_upstream` is ``None``, then read :attr:`user_id`."""

    levels: int = 0
    scm_seen: bool = False
    user: str | None = None
    next_upstream: tuple[str, int] | None = None
    visited: set[tuple[str, int]] = field(default_factory=set)

    def feed(self, causes: Sequence[Cause]) -> None:
        step = examine_causes(causes)
        self.levels += 1
        self.scm_seen = self.scm_seen or step.scm_seen
        self.user = step.user
        upstream = step.upstream
        # Stop at 10 levels, and on a loop (hand-edited data can make one).
        if upstream is not None and (
            self.levels >= MAX_UPSTREAM_LEVELS or upstream in self.visited
        ):
            upstream = None
        if upstream is not None:
            self.visited.add(upstream)
        self.next_upstream = None if step.user is not None else upstream

    @property
    def user_id(self) -> str:
        if self.user is not None:
            return self.user
        return "SCMTrigger" if self.scm_seen else "SYSTEM"


def trigger_of(cause: Cause) -> Trigger | None:
    name = cause.simple_name
    if name is None:
        return None
    if name == "UserIdCause":
        return Trigger(id=user_of(cause), type=name)
    if is_scm_cause(name):
        return Trigger(id="SCMTrigger", type=name)
    if is_upstream_cause(cause):
        assert cause.upstreamProject is not None
        upstream = Trigger(id=names.decoded(cause.upstreamProject), type=name)
        if cause.upstreamBuild is not None:
            upstream["job_run_number"] = str(cause.upstreamBuild)
        return upstream
    if name == "TimerTriggerCause":
        return Trigger(id="TimerTrigger", type=name)
    return Trigger(id=name.removesuffix("Cause") or name, type=name)


# -- parameters, SCM, artifacts ----------------------------------------------------------------


def _parameter_type(class_name: str | None, value: object) -> str | None:
    simple = simple_class_name(class_name)
    if simple is not None:
        return simple
    # Pre-2.x controllers: no _class; booleans and strings are all they exported plainly.
    if isinstance(value, bool):
        return "BooleanParameterValue"
    if isinstance(value, str):
        return "StringParameterValue"
    return None


def redacted(name: str, patterns: Sequence[str]) -> bool:
    """Whether a parameter named ``name`` matches ``mapping.redact_parameters`` (case-insensitive)."""
    return any(fnmatchcase(name.upper(), pattern.upper()) for pattern in patterns)


def map_parameters(build: Build, redact: Sequence[str]) -> list[RunParameter]:
    mapped = []
    for parameter in build.parameters:
        kind = _parameter_type(parameter.class_name, parameter.value)
        if kind not in SENT_PARAMETER_TYPES or parameter.name is None:
            continue  # password, credentials, file and run parameters are never sent
        if "value" not in parameter.model_fields_set or parameter.value is None:
            continue
        value = parameter.value
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        if redacted(parameter.name, redact):
            text = REDACTED
        mapped.append(RunParameter(type=kind, name=parameter.name, value=text))
    return mapped


# -- stages and steps --------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _utc_hour(hours: int) -> str:
    """``2026-11-28T18:`` for hours since the epoch."""
    return time.strftime("%Y-%m-%dT%H:", time.gmtime(hours * 3600))


def iso_millis(epoch_ms: int) -> str:
    """``2026-11-28T18:40:48.123Z`` (epoch_ms > 0). It runs for every stage and step of every
    build, whose nodes mostly start within one hour: the date and hour are formatted once per hour
    (cached), the rest by integer arithmetic (every UTC hour has 3,600,000 ms in epoch time)."""
    hours, rest = divmod(epoch_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{_utc_hour(hours)}{minutes:02d}:{seconds:02d}.{millis:03d}Z"


def _step(node: FlowNode, build_result: str) -> Step:
    result, state = NODE_STATUS.get(node.status or "", UNKNOWN_NODE_STATUS)
    if state == "inProgress":
        # The build is over (only finished builds are mapped), so the node is too: an input step
        # that was aborted stays paused in wfapi.
        result = "canceled" if build_result == "ABORTED" else "unknown"
        state = "completed"
    step: Step = {
        "id": node.id,
        "displayName": node.name,
        "displayDescription": node.name,
        "result": result,
        "state": state,
        "durationInMillis": node.durationMillis,
    }
    if node.startTimeMillis > 0:  # never started: no startTime at all
        step["startTime"] = iso_millis(node.startTimeMillis)
    return step


def _stage(stage: StageNode, build_result: str) -> Stage:
    return {
        **_step(stage, build_result),
        "steps": [_step(n, build_result) for n in stage.stageFlowNodes],
    }


def map_job_run(run: PipelineRun | None, build_result: str = "SUCCESS") -> JobRun | None:
    if run is None or not run.stages:
        return None
    return JobRun(stages=[_stage(stage, build_result) for stage in run.stages])


MAX_STAGE_STEPS = 100
"""wfapi lists at most this many steps per stage (``StageNodeExt.maxChildNodes``), silently."""


def truncated_stages(run: PipelineRun | None) -> list[str]:
    """Stages with exactly MAX_STAGE_STEPS steps: wfapi may have cut them."""
    if run is None:
        return []
    return [stage.name for stage in run.stages if len(stage.stageFlowNodes) == MAX_STAGE_STEPS]


# -- the payload -------------------------------------------------------------------------------


def jenkins_result(result: str) -> str:
    """Jenkins reads a result name it does not know as FAILURE (Result.fromString)."""
    return result if result in JENKINS_RESULTS else "FAILURE"


def map_build(
    job: JobRef,
    build: Build,
    *,
    rules: MappingRules,
    user_id: str,
    pipeline_run: PipelineRun | None = None,
    manifest_artifacts: Sequence[ArtifactRef] = (),
) -> Payload:
    """The payload of one finished build. ``user_id`` comes from the cause walk
    (:class:`CauseWalk`), ``pipeline_run`` from wfapi (``None`` when absent or not a Pipeline),
    ``manifest_artifacts`` from the build's artifact manifests (:func:`manifest_entries`)."""
    if not build.finished:
        raise ValueError(f"build {job.full_name} #{build.number} has not finished")
    assert build.result is not None
    decoded = job.decoded_name
    is_cd = names.matches_any(rules.cd_jobs, job.full_name) or any(
        artifact["input"] for artifact in manifest_artifacts
    )
    result = jenkins_result(build.result)
    project = project_build_data(job, build, rules.library_remotes)
    triggers = [t for t in (trigger_of(c) for c in build.causes) if t is not None]
    payload = Payload(
        pipeline=names.decoded(job.multibranch_project)
        if job.multibranch_project
        else job.full_name,
        job_full_name=decoded,
        qualified_name=decoded,
        instance_name=rules.instance_name,
        instance_guid=rules.instance_guid,
        instance_url=rules.instance_url,
        start_time=build.timestamp,
        duration=build.duration,
        result=rules.result_map.get(result, "failure"),
        build_number=build.number,
        user_id=user_id,
        ci=not is_cd,
        cd=is_cd,
    )
    # The optional fields: set only when there is something to send.
    if triggers:
        payload["trigger_chain"] = triggers
    parameters = map_parameters(build, rules.redact_parameters)
    if parameters:
        payload["job_run_params"] = parameters
    commits = commit_ids(build, project)
    if commits:
        payload["scm_commit_ids"] = commits
    url = repo_url(project)
    if url:  # never an empty string either
        payload["repo_url"] = url
    branch = branch_name(job, project)
    if branch:
        payload["branch_name"] = branch
    artifacts = [*manifest_artifacts, *file_artifacts(job, build, rules.instance_url)]
    if artifacts:
        payload["artifacts"] = artifacts
    run = map_job_run(pipeline_run, build.result) if job.is_pipeline else None
    if run is not None:
        payload["job_run"] = run
    return payload
