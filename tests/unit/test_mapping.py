"""The pure mapping of ARCHITECTURE "Where each payload field is computed", on the verbatim fixtures and on hand-made cases."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import TypeAdapter

from harvester.jenkins.models import Build, PipelineRun
from harvester.sei.mapping import (
    JobRef,
    MappingRules,
    iso_millis,
    map_build,
    map_job_run,
)
from harvester.sei.payload import PAYLOAD, JobRun, Payload, payload_json
from harvester.sei.scm import strip_branch_prefix
from tests.helpers import GUID, fixture_json

RULES = MappingRules(
    instance_name="Jenkins",
    instance_guid=GUID,
    instance_url="https://ci.example.com/",
    result_map={
        "SUCCESS": "success",
        "UNSTABLE": "failure",
        "FAILURE": "failure",
        "ABORTED": "failure",
        "NOT_BUILT": "failure",
    },
    cd_jobs=("deploy/**",),
    redact_parameters=("*PASSWORD*", "*TOKEN*"),
)


def body(payload: Payload) -> dict[str, Any]:
    """The body as the receiver reads it, after the contract's guard: the strict validator."""
    PAYLOAD.validate_python(payload)
    data: dict[str, Any] = json.loads(payload_json(payload))
    return data


def guarded(run: JobRun) -> JobRun:
    """``run`` after the strict validator of the contract's shape."""
    TypeAdapter(JobRun).validate_python(run)
    return run


def finished(**extra: Any) -> dict[str, Any]:
    return {
        "_class": "hudson.model.FreeStyleBuild",
        "number": 7,
        "timestamp": 1_700_000_000_123,
        "duration": 4200,
        "result": "SUCCESS",
        "inProgress": False,
        "building": False,
        **extra,
    }


def mapped(raw: dict[str, Any], job: JobRef | None = None, **kwargs: Any) -> dict[str, Any]:
    return body(
        map_build(
            job or JobRef("app"),
            Build.model_validate(raw),
            rules=RULES,
            user_id=kwargs.pop("user_id", "SYSTEM"),
            **kwargs,
        )
    )


# -- every build fixture maps to a valid, null-free payload --------------------------------------

BUILD_FIXTURES = [
    "joelee2012__api4jenkins/workflowrun.json",
    "joelee2012__api4jenkins/freestylebuild.json",
    "cdancy__jenkins-rest/build-info.json",
    "cdancy__jenkins-rest/build-info-git-commit.json",
    "hygieia__hygieia-build-jenkins-collector/buildDetails_full.json",
    "hygieia__hygieia-build-jenkins-collector/buildDetails_withMultipleSCM.json",
    "bndr__gojenkins/job1_build1.json",
]


def _no_empty(value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            assert item is not None, key
            if key != "value":  # a parameter's "" is data
                assert item != "", key
            assert item != [] or key == "steps", key
            _no_empty(item)
    elif isinstance(value, list):
        for item in value:
            _no_empty(item)


@pytest.mark.parametrize("name", BUILD_FIXTURES)
def test_every_build_fixture_maps(name: str) -> None:
    raw = fixture_json(name)
    payload = mapped(raw, JobRef("folder/job", is_pipeline="WorkflowRun" in raw.get("_class", "")))
    assert payload["build_number"] == raw["number"]
    assert payload["start_time"] == raw["timestamp"]
    assert payload["duration"] == raw["duration"]
    assert payload["result"] in {"success", "failure"}
    assert payload["ci"] is True and payload["cd"] is False
    _no_empty(payload)


def test_workflowrun_fixture() -> None:
    payload = mapped(
        fixture_json("joelee2012__api4jenkins/workflowrun.json"),
        JobRef("folder/job/pipeline", is_pipeline=True),
        user_id="admin",
    )
    assert payload["result"] == "failure"
    assert payload["trigger_chain"] == [
        {"id": "admin", "type": "UserIdCause"},
        {"id": "Replay", "type": "ReplayCause"},
    ]
    assert payload["job_run_params"] == [
        {"type": "StringParameterValue", "name": "parameter1", "value": "value1"},
        {"type": "StringParameterValue", "name": "parameter2", "value": "value2"},
    ]
    for absent in (
        "scm_commit_ids",
        "artifacts",
        "repo_url",
        "branch_name",
        "job_run",
        "module_name",
    ):
        assert absent not in payload


def test_git_changeset_fixture_and_artifacts() -> None:
    payload = mapped(
        fixture_json("cdancy__jenkins-rest/build-info-git-commit.json"), JobRef("fish")
    )
    assert payload["scm_commit_ids"] == ["d27afa0805201322d846d7defc29b82c88d9b5ce"]
    assert payload["artifacts"] == [
        {
            "input": False,
            "output": True,
            "type": "file",
            "location": "https://ci.example.com/job/fish/10/artifact/fish.txt",
            "name": "fish.txt",
            "qualifier": "10",
        }
    ]
    # pre-2.x build: no _class anywhere; the anonymous user cause is still recognised
    assert payload["trigger_chain"] == [{"id": "anonymous", "type": "UserIdCause"}]
    assert payload["job_run_params"] == [
        {"type": "BooleanParameterValue", "name": "bear", "value": "true"},
        {"type": "StringParameterValue", "name": "fish", "value": "salmon"},
    ]


def test_svn_changeset_fixture_keeps_order() -> None:
    payload = mapped(
        fixture_json("hygieia__hygieia-build-jenkins-collector/buildDetails_full.json")
    )
    assert payload["scm_commit_ids"] == ["1651902", "1651896"]


def test_first_build_data_wins_among_several() -> None:
    payload = mapped(
        fixture_json("hygieia__hygieia-build-jenkins-collector/buildDetails_withMultipleSCM.json")
    )
    assert payload["repo_url"] == "https://github.com/myrepo/Hygieia.git"
    assert payload["branch_name"] == "master"
    assert payload["scm_commit_ids"] == ["f6617799ff337984df0b80156995ddb87f60c0af"]


# -- wfapi ----------------------------------------------------------------------------------------


def test_stage_fixture_with_not_executed_steps() -> None:
    stage = fixture_json(
        "jenkinsci__pipeline-stage-view-plugin/checkpoint_resumed_stage_description.json"
    )
    run = map_job_run(PipelineRun.model_validate({"stages": [stage]}))
    assert run is not None
    only = guarded(run)["stages"][0]
    assert only["id"] == "9" and only["displayName"] == only["displayDescription"] == "Deploy"
    assert (only["result"], only["state"]) == ("succeeded", "completed")
    assert only["startTime"] == iso_millis(1414474754148) == "2014-10-28T05:39:14.148Z"
    steps = only["steps"]
    assert [s["id"] for s in steps] == ["10", "11", "12", "13", "14"]
    assert (steps[0]["result"], steps[0]["state"]) == ("skipped", "completed")
    assert "startTime" not in steps[0]  # never started
    assert steps[2]["startTime"] == "2014-10-28T05:39:14.148Z"


@pytest.mark.parametrize(
    "name",
    [
        "03_rest_api_runs_checkpoint_rerun.json",
        "04_rest_api_runs_failed.json",
        "06_rest_api_runs.json",
        "08_rest_api_unstable_run.json",
        "07_rest_api_runs_in_progress.json",
    ],
)
def test_wfapi_run_fixtures(name: str) -> None:
    for run_json in fixture_json(f"jenkinsci__pipeline-stage-view-plugin/{name}"):
        run = map_job_run(PipelineRun.model_validate(run_json))
        assert run is not None
        stages = guarded(run)["stages"]
        assert [s["id"] for s in stages] == [s["id"] for s in run_json["stages"]]  # wfapi order
        for stage in stages:
            assert stage["steps"] == []  # the runs endpoint carries no stageFlowNodes


@pytest.mark.parametrize(
    ("status", "result", "state"),
    [
        ("SUCCESS", "succeeded", "completed"),
        ("UNSTABLE", "succeededWithIssues", "completed"),
        ("FAILED", "failed", "completed"),
        ("ABORTED", "canceled", "completed"),
        ("NOT_EXECUTED", "skipped", "completed"),
        # Only finished builds are mapped: a node still running in wfapi is stale (§4a).
        ("IN_PROGRESS", "unknown", "completed"),
        ("PAUSED_PENDING_INPUT", "unknown", "completed"),
        ("WEIRD", "unknown", "completed"),
    ],
)
def test_node_status_table(status: str, result: str, state: str) -> None:
    run = map_job_run(
        PipelineRun.model_validate(
            {
                "stages": [
                    {
                        "id": "3",
                        "name": "S",
                        "status": status,
                        "startTimeMillis": 5,
                        "durationMillis": 1,
                        "stageFlowNodes": [
                            {
                                "id": "4",
                                "name": "step",
                                "status": status,
                                "parameterDescription": "secret script",
                            }
                        ],
                    }
                ]
            }
        )
    )
    assert run is not None
    stage = guarded(run)["stages"][0]
    assert (stage["result"], stage["state"]) == (result, state)
    assert (stage["steps"][0]["result"], stage["steps"][0]["state"]) == (result, state)
    assert "parameterDescription" not in json.dumps(stage)


def test_job_run_only_for_pipelines_and_only_with_stages() -> None:
    run = PipelineRun.model_validate(
        fixture_json("cdancy__jenkins-rest/pipeline-node.json")
        | {"stages": [fixture_json("cdancy__jenkins-rest/pipeline-node.json")]}
    )
    assert "job_run" in mapped(finished(), JobRef("p", is_pipeline=True), pipeline_run=run)
    assert "job_run" not in mapped(finished(), JobRef("p", is_pipeline=False), pipeline_run=run)
    assert "job_run" not in mapped(
        finished(), JobRef("p", is_pipeline=True), pipeline_run=PipelineRun(stages=[])
    )
    assert "job_run" not in mapped(finished(), JobRef("p", is_pipeline=True), pipeline_run=None)


# -- hand-made cases for each table row -----------------------------------------------------------


def test_multibranch_names() -> None:
    job = JobRef("org/repo/feature%2Fx", multibranch_project="org/repo", is_pipeline=True)
    payload = mapped(finished(artifacts=[{"relativePath": "out dir/a b.txt"}]), job)
    assert payload["pipeline"] == "org/repo"
    assert payload["job_full_name"] == payload["qualified_name"] == "org/repo/feature/x"
    assert payload["branch_name"] == "feature/x"
    assert payload["artifacts"][0]["location"] == (
        "https://ci.example.com/job/org/job/repo/job/feature%252Fx/7/artifact/out%20dir/a%20b.txt"
    )


def test_non_branch_job_keeps_its_full_name_as_pipeline() -> None:
    assert mapped(finished(), JobRef("team a/app"))["pipeline"] == "team a/app"


@pytest.mark.parametrize(
    ("jenkins", "sent"),
    [
        ("SUCCESS", "success"),
        ("UNSTABLE", "failure"),
        ("FAILURE", "failure"),
        ("ABORTED", "failure"),
        ("NOT_BUILT", "failure"),
        ("NOT_BUILD", "failure"),
    ],
)
def test_result_mapping(jenkins: str, sent: str) -> None:
    assert mapped(finished(result=jenkins))["result"] == sent


def test_unknown_result_goes_through_the_map_as_failure() -> None:
    rules = MappingRules(
        RULES.instance_name, RULES.instance_guid, RULES.instance_url, {"FAILURE": "broken"}
    )
    build = Build.model_validate(finished(result="NOT_BUILD"))
    assert map_build(JobRef("a"), build, rules=rules, user_id="x")["result"] == "broken"


def test_unfinished_builds_are_refused() -> None:
    with pytest.raises(ValueError, match="not finished"):
        mapped(finished(inProgress=True))
    with pytest.raises(ValueError, match="not finished"):
        mapped(finished(result=None))
    # building false but inProgress true: a Pipeline still writing its final state
    with pytest.raises(ValueError, match="not finished"):
        mapped(finished(building=False, inProgress=True))
    # no inProgress at all (older controllers): building stands for it
    raw = finished()
    raw.pop("inProgress")
    assert mapped(raw)["build_number"] == 7


def test_cd_jobs_glob() -> None:
    assert mapped(finished(), JobRef("deploy/prod/eu"))["cd"] is True
    assert mapped(finished(), JobRef("deploy/prod/eu"))["ci"] is False
    assert mapped(finished(), JobRef("build/deploy"))["cd"] is False


def test_parameters() -> None:
    params = [
        {"_class": "hudson.model.StringParameterValue", "name": "REGION", "value": "eu"},
        {"_class": "hudson.model.TextParameterValue", "name": "NOTES", "value": ""},
        {"_class": "hudson.model.BooleanParameterValue", "name": "FAST", "value": True},
        {"_class": "hudson.model.ChoiceParameterValue", "name": "SIZE", "value": "L"},
        {"_class": "hudson.model.StringParameterValue", "name": "github_token", "value": "ghp_x"},
        {"_class": "hudson.model.PasswordParameterValue", "name": "DB"},
        {
            "_class": "com.cloudbees.plugins.credentials.CredentialsParameterValue",
            "name": "C",
            "value": "cred-id",
        },
        {"_class": "hudson.model.FileParameterValue", "name": "F", "value": "x"},
        {"_class": "hudson.model.RunParameterValue", "name": "R", "value": "job#1"},
    ]
    raw = finished(actions=[{"_class": "hudson.model.ParametersAction", "parameters": params}])
    assert mapped(raw)["job_run_params"] == [
        {"type": "StringParameterValue", "name": "REGION", "value": "eu"},
        {"type": "TextParameterValue", "name": "NOTES", "value": ""},
        {"type": "BooleanParameterValue", "name": "FAST", "value": "true"},
        {"type": "ChoiceParameterValue", "name": "SIZE", "value": "L"},
        {"type": "StringParameterValue", "name": "github_token", "value": "********"},
    ]


def test_commit_ids_dedup_and_fallback() -> None:
    change_sets = [
        {"items": [{"commitId": "a"}, {"commitId": "b"}]},
        {"items": [{"commitId": "a"}]},
    ]
    build_data = {
        "_class": "hudson.plugins.git.util.BuildData",
        "lastBuiltRevision": {"SHA1": "fallback", "branch": [{"name": "origin/dev"}]},
        "remoteUrls": ["git@example.com:r.git", "other"],
    }
    assert mapped(finished(changeSets=change_sets, actions=[build_data]))["scm_commit_ids"] == [
        "a",
        "b",
    ]
    payload = mapped(finished(changeSets=[], actions=[{}, build_data]))
    assert payload["scm_commit_ids"] == ["fallback"]
    assert payload["repo_url"] == "git@example.com:r.git"
    assert payload["branch_name"] == "dev"


@pytest.mark.parametrize(
    ("raw", "branch"),
    [
        ("refs/remotes/origin/main", "main"),
        ("refs/remotes/upstream/feature/x", "feature/x"),
        ("remotes/origin/rel-1", "rel-1"),
        ("refs/heads/main", "main"),
        ("origin/dev", "dev"),
        ("plain", "plain"),
    ],
)
def test_branch_prefixes(raw: str, branch: str) -> None:
    assert strip_branch_prefix(raw) == branch
