"""The pure parts of ARCHITECTURE "Where each payload field is computed" that real controllers' data needs: the project's BuildData among
shared libraries' checkouts, SEI_SCM_COMMIT_IDS, artifact manifests, stale wfapi nodes."""

from __future__ import annotations

from typing import Any

import pytest

from harvester.config import DEFAULT_LIBRARY_REMOTES
from harvester.jenkins.models import Build, PipelineRun
from harvester.sei.artifacts import file_artifacts, manifest_entries, manifests_of
from harvester.sei.jobref import JobRef
from harvester.sei.mapping import map_job_run, truncated_stages
from harvester.sei.scm import (
    commit_ids,
    is_library,
    parameter_commit_ids,
    project_build_data,
)
from tests.helpers import fixture_json

LIBS = tuple(DEFAULT_LIBRARY_REMOTES)


def git(url: str, sha: str, branch: str = "refs/remotes/origin/main") -> dict[str, Any]:
    return {
        "_class": "hudson.plugins.git.util.BuildData",
        "lastBuiltRevision": {"SHA1": sha, "branch": [{"SHA1": sha, "name": branch}]},
        "remoteUrls": [url],
    }


def build(*actions: dict[str, Any], **fields: Any) -> Build:
    return Build.model_validate(
        {"number": 7, "result": "SUCCESS", "actions": list(actions), **fields}
    )


@pytest.mark.parametrize(
    ("url", "library"),
    [
        ("https://github.com/zowe/jenkins-library.git", True),
        ("git@github.com:acme/Pipeline-Lib.git", True),
        ("https://git.example.com/platform/shared-libraries", True),
        ("https://git.example.com/ci/build-lib", True),
        ("https://git.example.com/ci/build-lib.git", True),
        ("https://github.com/zowe/docs-site.git", False),
        ("https://git.example.com/library-catalog.git", False),
    ],
)
def test_library_remotes(url: str, library: bool) -> None:
    data = build(git(url, "1" * 40)).build_data[0]
    assert is_library(data, LIBS) is library


def test_the_project_is_the_first_checkout_that_is_not_a_library() -> None:
    b = build(
        git("https://github.com/zowe/jenkins-library.git", "1" * 40, "refs/remotes/origin/master"),
        git("https://github.com/zowe/docs-site.git", "2" * 40),
        git("https://github.com/zowe/other.git", "3" * 40),
    )
    project = project_build_data(JobRef("docs"), b, LIBS)
    assert project is not None and project.remoteUrls == ["https://github.com/zowe/docs-site.git"]
    assert commit_ids(b, project) == ["2" * 40]


def test_when_every_checkout_is_a_library_the_first_is_taken() -> None:
    b = build(git("https://x/a-lib.git", "1" * 40), git("https://x/b-lib.git", "2" * 40))
    project = project_build_data(JobRef("x"), b, LIBS)
    assert project is not None and project.remoteUrls == ["https://x/a-lib.git"]


def test_a_branch_job_takes_the_checkout_of_its_branch() -> None:
    b = build(
        git("https://x/tools.git", "1" * 40, "refs/remotes/origin/main"),
        git("https://x/web.git", "2" * 40, "refs/remotes/origin/feature/x"),
    )
    job = JobRef("web/feature%2Fx", multibranch_project="web", is_pipeline=True)
    project = project_build_data(job, b, LIBS)
    assert project is not None and project.remoteUrls == ["https://x/web.git"]
    assert project_build_data(JobRef("plain"), b, LIBS) == b.build_data[0]


def test_no_build_data_at_all() -> None:
    assert project_build_data(JobRef("x"), build(), LIBS) is None
    assert commit_ids(build(), None) == []


def test_the_real_multi_scm_fixture_keeps_jenkins_order() -> None:
    raw = fixture_json("hygieia__hygieia-build-jenkins-collector/buildDetails_withMultipleSCM.json")
    b = Build.model_validate(raw)
    urls = [d.remoteUrls for d in b.build_data]
    assert urls == [
        ["https://github.com/myrepo/Hygieia.git"],
        ["https://github.com/myrepo/Hygieia222.git"],
    ]


def parameter(value: Any) -> dict[str, Any]:
    return {
        "_class": "hudson.model.ParametersAction",
        "parameters": [
            {
                "_class": "hudson.model.StringParameterValue",
                "name": "SEI_SCM_COMMIT_IDS",
                "value": value,
            }
        ],
    }


def test_sei_scm_commit_ids_as_the_plugin_reads_it() -> None:
    a, b = "a" * 40, "B" * 40
    value = f" {a},{b};;{a}\tshort, {'c' * 41}\n{'d' * 39}"
    assert parameter_commit_ids(build(parameter(value))) == [a, b]
    many = ",".join(f"{i:040x}" for i in range(150))
    assert len(parameter_commit_ids(build(parameter(many)))) == 100
    assert parameter_commit_ids(build(parameter(True))) == []


def test_change_sets_come_first_then_the_parameter_then_the_revision() -> None:
    change = {"changeSets": [{"items": [{"commitId": "e" * 40}]}]}
    with_all = build(parameter("a" * 40), git("https://x/p.git", "f" * 40), **change)
    project = with_all.build_data[0]
    assert commit_ids(with_all, project) == ["e" * 40]
    no_changes = build(parameter("a" * 40), git("https://x/p.git", "f" * 40))
    assert commit_ids(no_changes, no_changes.build_data[0]) == ["a" * 40]
    only_revision = build(git("https://x/p.git", "f" * 40))
    assert commit_ids(only_revision, only_revision.build_data[0]) == ["f" * 40]


# -- manifests -----------------------------------------------------------------------------------

ENTRY = {"type": "container", "location": "reg/app", "name": "app", "qualifier": "1.0"}


@pytest.mark.parametrize(
    "document",
    [{"artifacts": [ENTRY]}, {"artifact": ENTRY}, ENTRY],
    ids=["artifacts", "artifact", "one object"],
)
def test_the_three_manifest_forms(document: Any) -> None:
    found = manifest_entries([("sei-artifacts.json", document)])
    assert found.artifacts == [{**ENTRY, "input": False, "output": True}]
    assert found.problems == []


def test_entries_missing_a_field_are_skipped_with_the_reason() -> None:
    found = manifest_entries(
        [
            (
                "artifact-manifest.json",
                {
                    "artifacts": [
                        {**ENTRY, "name": ""},
                        {**ENTRY, "input": "yes"},
                        "not an object",
                        {**ENTRY, "qualifier": 3, "hash": "sha256:x", "metadata": {"n": 1}},
                    ]
                },
            )
        ]
    )
    assert [a["qualifier"] for a in found.artifacts] == ["3"]
    assert found.artifacts[0].get("metadata") == {"n": "1"}
    assert found.artifacts[0].get("hash") == "sha256:x"
    assert len(found.problems) == 3
    assert "lacks name" in found.problems[0]


def test_manifests_are_read_only_at_the_top_and_not_listed_as_files() -> None:
    b = build(
        artifacts=[
            {"relativePath": "sei-artifacts.json"},
            {"relativePath": "sub/artifact-manifest.json"},
            {"relativePath": "artifact-manifest.json"},
            {"relativePath": "app.tgz"},
        ]
    )
    assert manifests_of(b) == ["artifact-manifest.json", "sei-artifacts.json"]
    names = [a["name"] for a in file_artifacts(JobRef("j"), b, "https://ci/")]
    assert names == ["sub/artifact-manifest.json", "app.tgz"]


# -- stale and truncated stages -----------------------------------------------------------------


def run_with(status: str, steps: int = 1) -> PipelineRun:
    node = {"id": "4", "name": "step", "status": status, "startTimeMillis": 0}
    return PipelineRun.model_validate(
        {
            "stages": [
                {"id": "3", "name": "Approve", "status": status, "stageFlowNodes": [node] * steps}
            ]
        }
    )


@pytest.mark.parametrize(
    ("status", "build_result", "result"),
    [
        ("PAUSED_PENDING_INPUT", "ABORTED", "canceled"),
        ("IN_PROGRESS", "ABORTED", "canceled"),
        ("PAUSED_PENDING_INPUT", "SUCCESS", "unknown"),
        ("IN_PROGRESS", "FAILURE", "unknown"),
    ],
)
def test_a_node_still_running_in_a_finished_build_is_completed(
    status: str, build_result: str, result: str
) -> None:
    mapped = map_job_run(run_with(status), build_result)
    assert mapped is not None
    stage = mapped["stages"][0]
    assert (stage["state"], stage["result"]) == ("completed", result)
    assert (stage["steps"][0]["state"], stage["steps"][0]["result"]) == ("completed", result)
    assert "startTime" not in stage["steps"][0]  # never started


def test_stages_with_exactly_100_steps_may_be_truncated() -> None:
    assert truncated_stages(run_with("SUCCESS", 100)) == ["Approve"]
    assert truncated_stages(run_with("SUCCESS", 99)) == []
    assert truncated_stages(None) == []
