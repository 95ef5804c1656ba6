"""The SEI custom CI/CD webhook payload (CONTRACT §4), as strict pydantic models.

Strict: unknown fields are refused and types are not coerced, so a mapping bug fails a test instead
of reaching the receiver. Fields with no value are ``None`` here and left out of the JSON body: the
receiver must never see ``null``, ``""`` or ``[]`` for a field we have nothing for.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Outbound(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Step(_Outbound):
    id: str
    displayName: str  # noqa: N815 - receiver's key
    displayDescription: str  # noqa: N815
    result: str
    state: str
    startTime: str | None = None  # noqa: N815
    durationInMillis: int  # noqa: N815


class Stage(Step):
    steps: list[Step]


class JobRun(_Outbound):
    stages: list[Stage]


class Trigger(_Outbound):
    id: str
    type: str
    job_run_number: str | None = None


class RunParameter(_Outbound):
    type: str
    name: str
    value: str


class ArtifactRef(_Outbound):
    input: bool = False
    output: bool = True
    type: str = "file"
    location: str
    name: str
    qualifier: str
    hash: str | None = None
    metadata: dict[str, str] | None = None


class Payload(_Outbound):
    pipeline: str
    job_full_name: str
    qualified_name: str
    instance_name: str
    instance_guid: str
    instance_url: str
    start_time: int
    duration: int
    result: str
    build_number: int
    user_id: str
    trigger_chain: list[Trigger] | None = None
    job_run_params: list[RunParameter] | None = None
    scm_commit_ids: list[str] | None = None
    repo_url: str | None = None
    branch_name: str | None = None
    ci: bool
    cd: bool
    artifacts: list[ArtifactRef] | None = None
    job_run: JobRun | None = None

    def to_json(self) -> str:
        """The request body. ``exclude_none`` drops absent fields; empty lists were already
        turned into ``None`` by the mapping."""
        return self.model_dump_json(exclude_none=True)
