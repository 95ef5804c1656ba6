"""The SEI custom CI/CD webhook payload: its shape as typed dicts, and the strict
validator that guards it.

The mapping builds plain dicts of these types (mypy checks every key and value), and the body is
written from them by pydantic-core's serializer (:func:`payload_json`): pydantic models here cost
a third of the mapping's CPU on every build (issue 14). The strict validator (:data:`PAYLOAD`:
unknown keys refused, no type coerced) is the contract's guard: the mapping tests run every
payload through it, so a mapping bug fails a test instead of reaching the receiver.

A field with no value is absent (``NotRequired``), never ``None``: the receiver must never see
``null``, ``""`` or ``[]`` for a field we have nothing for.
"""

from __future__ import annotations

import json
from typing import Annotated, NotRequired

from pydantic import ConfigDict, Field, TypeAdapter, with_config
from pydantic_core import PydanticSerializationError
from typing_extensions import TypedDict  # pydantic reads only this one on Python < 3.12

_STRICT = ConfigDict(extra="forbid", strict=True)
_SOME = Field(min_length=1)  # never an empty string or an empty list


@with_config(_STRICT)
class Step(TypedDict):
    id: str
    displayName: str
    displayDescription: str
    result: str
    state: str
    startTime: NotRequired[str]
    durationInMillis: int


@with_config(_STRICT)
class Stage(Step):
    steps: list[Step]


@with_config(_STRICT)
class JobRun(TypedDict):
    stages: list[Stage]


@with_config(_STRICT)
class Trigger(TypedDict):
    id: str
    type: str
    job_run_number: NotRequired[str]


@with_config(_STRICT)
class RunParameter(TypedDict):
    type: str
    name: str
    value: str


@with_config(_STRICT)
class ArtifactRef(TypedDict):
    input: bool
    output: bool
    type: str
    location: str
    name: str
    qualifier: str
    hash: NotRequired[str]
    metadata: NotRequired[dict[str, str]]


@with_config(_STRICT)
class Payload(TypedDict):
    pipeline: Annotated[str, _SOME]  # the receiver answers 400 for the six it checks empty
    job_full_name: Annotated[str, _SOME]
    qualified_name: Annotated[str, _SOME]
    instance_name: Annotated[str, _SOME]
    instance_guid: Annotated[str, _SOME]
    instance_url: str
    start_time: int
    duration: int
    result: Annotated[str, _SOME]
    build_number: int
    user_id: str
    trigger_chain: NotRequired[Annotated[list[Trigger], _SOME]]
    job_run_params: NotRequired[Annotated[list[RunParameter], _SOME]]
    scm_commit_ids: NotRequired[Annotated[list[str], _SOME]]
    repo_url: NotRequired[Annotated[str, _SOME]]
    branch_name: NotRequired[Annotated[str, _SOME]]
    ci: bool
    cd: bool
    artifacts: NotRequired[Annotated[list[ArtifactRef], _SOME]]
    job_run: NotRequired[JobRun]


PAYLOAD: TypeAdapter[Payload] = TypeAdapter(Payload)
"""The strict guard: ``PAYLOAD.validate_python(payload)`` raises pydantic's ValidationError for
an unknown key, a missing one, a value of another type (``None`` included), or an empty one."""


def payload_json(payload: Payload) -> str:
    """The request body, as :func:`compact_json` writes it, by pydantic-core's serializer with no
    validation: a third of ``json.dumps``' time, on every build."""
    try:
        return PAYLOAD.dump_json(payload).decode("utf-8")
    except PydanticSerializationError:  # a lone surrogate: UTF-8 cannot carry it
        return compact_json(payload)


def compact_json(value: object) -> str:
    """A body as the receiver gets it: compact, non-ASCII kept as it is (UTF-8 on the wire). A
    string Jenkins sent with a lone surrogate (JSON allows ``\\ud800``; UTF-8 cannot carry it) is
    written as a JSON escape instead, so that the build is still sent and stored."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":"))
    return text
