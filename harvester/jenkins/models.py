"""What we read from Jenkins, as lenient pydantic models.

Real controllers omit fields (old versions have no ``_class``; ``tree=`` queries drop what was not
asked for) and add fields (every plugin contributes actions), so everything here has a default and
unknown keys are ignored. Validation failures are still possible (a number that is not a number) and
are reported as a malformed response for that job.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# What the harvester asks for with ``tree=``, next to the models that read it: a field the models
# read must be named here, or Jenkins leaves it out.
CAUSE_FIELDS = "causes[_class,userId,userName,upstreamProject,upstreamBuild]"
BUILD_FIELDS = (
    "_class,number,timestamp,duration,result,inProgress,building,"
    f"actions[_class,urlName,{CAUSE_FIELDS},parameters[_class,name,value],"
    "lastBuiltRevision[SHA1,branch[name]],remoteUrls],"
    "changeSets[items[commitId]],changeSet[items[commitId]],artifacts[relativePath]"
)
BUILDS_PAGE = 100
"""Jenkins caps ``builds`` at 100; ``allBuilds{M,N}`` pages beyond."""


class _Inbound(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


def simple_class_name(class_name: str | None) -> str | None:
    """``hudson.model.Cause$UserIdCause`` → ``UserIdCause``."""
    if not class_name:
        return None
    return class_name.rsplit(".", 1)[-1].rsplit("$", 1)[-1]


class Cause(_Inbound):
    class_name: str | None = Field(None, alias="_class")
    userId: str | None = None  # noqa: N815 - Jenkins' own key
    upstreamProject: str | None = None  # noqa: N815
    upstreamBuild: int | None = None  # noqa: N815
    # Pre-2.x controllers export no _class; a UserIdCause still shows its userName key.
    userName: str | None = None  # noqa: N815

    @property
    def simple_name(self) -> str | None:
        name = simple_class_name(self.class_name)
        if name is not None:
            return name
        if "userId" in self.model_fields_set or "userName" in self.model_fields_set:
            return "UserIdCause"
        if self.upstreamProject is not None:
            return "UpstreamCause"
        return None


class ParameterValue(_Inbound):
    class_name: str | None = Field(None, alias="_class")
    name: str | None = None
    value: Any = None


class ChangeSetItem(_Inbound):
    commitId: str | None = None  # noqa: N815


class ChangeSet(_Inbound):
    items: list[ChangeSetItem] = Field(default_factory=list)


class Artifact(_Inbound):
    relativePath: str | None = None  # noqa: N815


class BranchSpec(_Inbound):
    name: str | None = None


class Revision(_Inbound):
    SHA1: str | None = None
    branch: list[BranchSpec] = Field(default_factory=list)


BUILD_DATA_CLASS = "hudson.plugins.git.util.BuildData"
CAUSE_ACTION_CLASS = "hudson.model.CauseAction"
PARAMETERS_ACTION_CLASS = "hudson.model.ParametersAction"


class BuildData(_Inbound):
    lastBuiltRevision: Revision | None = None  # noqa: N815
    remoteUrls: list[str] = Field(default_factory=list)  # noqa: N815


class Build(_Inbound):
    """One build (a ``Run``), as the job's ``builds[...]`` tree query returns it."""

    class_name: str | None = Field(None, alias="_class")
    number: int
    timestamp: int = 0
    duration: int = 0
    result: str | None = None
    inProgress: bool | None = None  # noqa: N815
    building: bool | None = None
    # Actions are kept raw: they are heterogeneous, and we pick out the few classes we read.
    actions: list[dict[str, Any] | None] = Field(default_factory=list)
    changeSets: list[ChangeSet] = Field(default_factory=list)  # noqa: N815
    changeSet: ChangeSet | None = None  # noqa: N815
    artifacts: list[Artifact] = Field(default_factory=list)

    @property
    def finished(self) -> bool:
        """Finished means ``inProgress`` false (``building`` turns false before the Pipeline has
        written its last state); where ``inProgress`` is absent (older controllers), ``building``
        stands for it. Either way ``result`` must be set."""
        running = self.inProgress if self.inProgress is not None else self.building
        return running is False and self.result is not None

    def _actions_of(self, class_name: str, legacy_key: str) -> list[dict[str, Any]]:
        found = []
        for action in self.actions:
            if not action:
                continue
            declared = action.get("_class")
            # Controllers before 2.x export no _class: recognise the action by its payload key.
            if declared == class_name or (declared is None and legacy_key in action):
                found.append(action)
        return found

    @property
    def causes(self) -> list[Cause]:
        """The causes of the build itself: those of its CauseAction actions only (an
        InterruptedBuildAction also holds ``causes``, of why the build was stopped)."""
        return [
            Cause.model_validate(cause)
            for action in self._actions_of(CAUSE_ACTION_CLASS, "causes")
            for cause in action.get("causes") or []
            if isinstance(cause, dict)
        ]

    @property
    def parameters(self) -> list[ParameterValue]:
        return [
            ParameterValue.model_validate(parameter)
            for action in self._actions_of(PARAMETERS_ACTION_CLASS, "parameters")
            for parameter in action.get("parameters") or []
            if isinstance(parameter, dict)
        ]

    @property
    def build_data(self) -> list[BuildData]:
        """Every git ``BuildData`` action, in Jenkins' order: the project's checkout, and those
        of the Pipeline shared libraries the build loaded (see harvester.sei.scm)."""
        return [
            BuildData.model_validate(action)
            for action in self._actions_of(BUILD_DATA_CLASS, "lastBuiltRevision")
        ]


class CausesOnly(_Inbound):
    """An upstream build fetched only for its causes (cause walk)."""

    actions: list[dict[str, Any] | None] = Field(default_factory=list)

    @property
    def causes(self) -> list[Cause]:
        return Build(number=0, actions=self.actions).causes


class FlowNode(_Inbound):
    id: str
    name: str = ""
    status: str | None = None
    startTimeMillis: int = 0  # noqa: N815
    durationMillis: int = 0  # noqa: N815


class Stage(FlowNode):
    stageFlowNodes: list[FlowNode] = Field(default_factory=list)  # noqa: N815


class PipelineRun(_Inbound):
    """``wfapi/describe?fullStages=true``."""

    status: str | None = None
    stages: list[Stage] = Field(default_factory=list)
