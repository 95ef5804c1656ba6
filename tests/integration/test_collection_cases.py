"""Collection against builds shaped like real controllers': held builds,
skipped builds, re-created jobs, shared libraries, artifact manifests, aborted input steps,
truncated stages, and the cursor a catch-up leaves. Real loopback servers, real SQLite ledgers."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from harvester.app import mapping_rules
from harvester.cli.main import main
from harvester.collect.collector import REUSED, Collector
from harvester.config import settings_from_mapping
from harvester.daemon.metrics import Metrics
from harvester.demo import MULTIBRANCH, PIPELINE, SimBuild, SimJob, SimStage, Simulator
from harvester.jenkins.client import JenkinsClient
from harvester.ledger import Ledger
from harvester.util.timeparse import to_epoch_ms
from tests.helpers import config_dict, loopback_config

NOW = datetime.now(tz=UTC).replace(microsecond=0)
NOW_MS = to_epoch_ms(NOW)
LIBRARY = "https://github.com/zowe/jenkins-library.git"
PROJECT = "https://github.com/zowe/docs-site.git"


def ago(minutes: float) -> int:
    return int(NOW_MS - minutes * 60_000)


@pytest.fixture
def sim() -> Simulator:
    with Simulator() as simulator:
        yield simulator


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    opened = Ledger.open(f"sqlite:///{tmp_path / 'l.db'}", controller="ci")
    yield opened
    opened.close()


def collector_for(sim: Simulator, ledger: Ledger, metrics: Metrics | None = None) -> Collector:
    settings = settings_from_mapping(config_dict(jenkins_url=sim.url))
    jenkins = JenkinsClient(
        sim.url, sim.username, sim.api_token, timeout=5, max_concurrency=4, backoff_factor=0.01
    )
    return Collector(
        jenkins,
        ledger,
        mapping_rules(settings),
        clock=lambda: NOW,
        events=None if metrics is None else metrics.observe_collect,
    )


def collect(sim: Simulator, ledger: Ledger, since: timedelta = timedelta(days=7), **kw: Any):
    return collector_for(sim, ledger, **kw).collect(NOW - since)


def rows(ledger: Ledger) -> dict[tuple[str, int], Any]:
    return {(e.job, e.number): e for e in ledger.entries()}


def payload(ledger: Ledger, job: str, number: int) -> dict[str, Any]:
    entry = ledger.entry(job, number)
    assert entry is not None
    return json.loads(entry.payload)


def build_data(url: str, sha: str, branch: str) -> dict[str, Any]:
    name = f"refs/remotes/origin/{branch}"
    return {
        "_class": "hudson.plugins.git.util.BuildData",
        "lastBuiltRevision": {"SHA1": sha, "branch": [{"SHA1": sha, "name": name}]},
        "remoteUrls": [url],
    }


# -- held builds -------------------------------------------------------------------


def test_a_held_build_costs_one_request_a_cycle_and_is_never_dropped_by_since(sim, ledger):
    job = sim.add("app")
    job.builds = [
        SimBuild(1, ago(60)),
        SimBuild(2, ago(50), in_progress=True, result=None),
        SimBuild(3, ago(40)),
    ]
    assert collect(sim, ledger).builds_held == 1
    assert ledger.held() == {"app": {2}}
    for _ in range(3):  # long after: #2 is older than any `since` now
        sim.reset_counts()
        collect(sim, ledger, since=timedelta(minutes=1))
        assert dict(sim.counts) == {"root": 1, "build": 1}  # discovery + the held build
    job.builds[1].finish()
    collect(sim, ledger, since=timedelta(minutes=1))
    assert sorted(n for _, n in rows(ledger)) == [1, 2, 3]
    assert ledger.held() == {}
    sim.reset_counts()
    collect(sim, ledger)
    assert dict(sim.counts) == {"root": 1}  # settled: nothing is asked again


def test_a_build_whose_details_keep_failing_is_held_without_rereading_newer_builds(sim, ledger):
    job = sim.add("pipe", PIPELINE)
    job.builds = [SimBuild(n, ago(60 - n), stages=[SimStage("Build")]) for n in range(1, 4)]
    sim.fail("/job/pipe/2/wfapi/", 500)
    collect(sim, ledger)
    assert sorted(n for _, n in rows(ledger)) == [1, 3]
    assert ledger.cursors() == {"pipe": 3} and ledger.held() == {"pipe": {2}}
    job.builds.append(SimBuild(4, ago(5), stages=[SimStage("Build")]))
    sim.reset_counts()
    collect(sim, ledger)
    # the new build: 1 page (only #4) + its wfapi; the held one: its build + wfapi (500 again)
    assert sim.counts["job"] == 1 and sim.counts["build"] == 1
    assert sorted(n for _, n in rows(ledger)) == [1, 3, 4]
    sim.heal()
    collect(sim, ledger)
    assert sorted(n for _, n in rows(ledger)) == [1, 2, 3, 4] and ledger.held() == {}


def test_a_held_build_deleted_meanwhile_is_released(sim, ledger) -> None:
    job = sim.add("app")
    job.builds = [SimBuild(1, ago(9)), SimBuild(2, ago(5), in_progress=True, result=None)]
    collect(sim, ledger)
    assert ledger.held() == {"app": {2}}
    job.builds.pop()
    collect(sim, ledger)
    assert ledger.held() == {}


# -- skipped builds and re-created jobs --------------------------------------------------------


def test_a_build_that_does_not_validate_is_skipped_and_does_not_block_its_job(sim, ledger):
    job = sim.add("app")
    job.builds = [
        SimBuild(1, ago(30)),
        SimBuild(2, ago(20), broken={"duration": "forever"}),
        SimBuild(3, ago(10)),
    ]
    report = collect(sim, ledger)
    assert report.builds_collected == 2 and report.builds_skipped == 1
    got = rows(ledger)
    assert {n: e.status for (_, n), e in got.items()} == {1: "pending", 2: "skipped", 3: "pending"}
    assert "does not validate" in (got[("app", 2)].last_error or "")
    assert ledger.cursors() == {"app": 3}
    job.builds.append(SimBuild(4, ago(1)))
    collect(sim, ledger)
    assert rows(ledger)[("app", 4)].status == "pending"
    assert [e.number for e in ledger.entries(status="skipped")] == [2]


def test_a_re_created_job_is_collected_from_1_and_reused_numbers_are_skipped(sim, ledger):
    job = sim.add("deploy-prod")
    job.builds = [SimBuild(n, ago(2000 - n)) for n in range(1, 11)]
    collect(sim, ledger, since=timedelta(minutes=1993 - 0.5))  # only 8, 9, 10 on first sight
    assert sorted(n for _, n in rows(ledger)) == [8, 9, 10]
    assert ledger.cursors() == {"deploy-prod": 10}
    # deleted and re-created (a re-pushed branch, JCasC re-seeding): #1 .. #9 again
    job.builds = [SimBuild(n, ago(100 - n)) for n in range(1, 10)]
    metrics = Metrics()
    report = collect(sim, ledger, metrics=metrics)
    assert report.jobs_recreated == 1
    assert "harvester_recreated_jobs_total 1.0" in metrics.exposition().decode()
    pending = sorted(e.number for e in ledger.entries(status="pending"))
    assert pending == list(range(1, 11))  # the new 1..7 and the old 8..10
    skipped = ledger.entries(status="skipped")
    assert sorted(e.number for e in skipped) == [8, 9]  # the new job's 8 and 9 reuse numbers
    assert all(e.last_error == REUSED for e in skipped)
    assert ledger.cursors() == {"deploy-prod": 9}
    collect(sim, ledger)  # nothing twice
    assert len(ledger.entries()) == 3 + 9


# -- the project's BuildData, SEI_SCM_COMMIT_IDS, manifests -------------------------------------


def test_a_shared_librarys_checkout_is_not_the_builds_repository(
    sim, ledger, tmp_path, receiver, capsys
) -> None:
    lib_sha, project_sha = "1" * 40, "2" * 40
    sim.add("docs", PIPELINE).builds = [
        SimBuild(
            1,
            ago(5),
            stages=[SimStage("Build")],
            libraries=[(LIBRARY, lib_sha, "master")],
            extra_actions=[build_data(PROJECT, project_sha, "main")],
        )
    ]
    collect(sim, ledger)
    got = payload(ledger, "docs", 1)
    assert got["repo_url"] == PROJECT
    assert got["scm_commit_ids"] == [project_sha]
    assert got["branch_name"] == "main"
    code = main(["--config", str(loopback_config(sim, receiver, tmp_path)), "preview", "docs", "1"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["repo_url"] == PROJECT


def test_a_multibranch_build_takes_the_checkout_of_its_own_branch(sim, ledger) -> None:
    project = sim.add("web", MULTIBRANCH)
    branch = SimJob("feature%2Fx", PIPELINE)
    project.children.append(branch)
    branch.builds = [
        SimBuild(
            1,
            ago(5),
            stages=[SimStage("Build")],
            extra_actions=[
                build_data("https://git.example.com/tools.git", "3" * 40, "main"),
                build_data("https://git.example.com/web.git", "4" * 40, "feature/x"),
            ],
        )
    ]
    collect(sim, ledger)
    got = payload(ledger, "web/feature%2Fx", 1)
    assert (got["repo_url"], got["branch_name"]) == ("https://git.example.com/web.git", "feature/x")
    assert got["scm_commit_ids"] == ["4" * 40]


def test_the_sei_scm_commit_ids_parameter_is_the_fallback(sim, ledger) -> None:
    ids = "a" * 40 + ", not-a-commit;" + "b" * 40 + "\n" + "a" * 40
    parameter = {"_class": "hudson.model.StringParameterValue", "name": "SEI_SCM_COMMIT_IDS"}
    sim.add("deploy").builds = [
        SimBuild(1, ago(5), parameters=[{**parameter, "value": ids}], repo_url=PROJECT)
    ]
    collect(sim, ledger)
    assert payload(ledger, "deploy", 1)["scm_commit_ids"] == ["a" * 40, "b" * 40]


MANIFEST = {
    "artifacts": [
        {
            "input": True,
            "output": False,
            "type": "container",
            "location": "registry.example.com/team/api",
            "name": "api",
            "qualifier": "1.4.2",
            "hash": "sha256:" + "c" * 64,
            "metadata": {"tag": "1.4.2", "size": 123},
        },
        {"type": "container", "name": "no-location", "qualifier": "x"},
    ]
}
ONE_ARTIFACT = {"type": "container", "location": "registry/w", "name": "worker", "qualifier": "7"}


def test_artifact_manifests_are_passed_through_and_make_a_cd_build(
    sim, ledger, tmp_path, receiver, capsys, caplog
) -> None:
    files = {
        "artifact-manifest.json": json.dumps(MANIFEST).encode(),
        "sei-artifacts.json": json.dumps(ONE_ARTIFACT).encode(),
    }
    sim.add("release").builds = [
        SimBuild(1, ago(5), artifacts=[*files, "dist/app.tgz"], files=files),
        SimBuild(2, ago(4), artifacts=["dist/app.tgz"]),  # no manifest: no extra request
    ]
    with caplog.at_level(logging.WARNING):
        collect(sim, ledger)
    assert sim.counts["artifact"] == 2
    artifacts = payload(ledger, "release", 1)["artifacts"]
    assert [a["name"] for a in artifacts] == ["api", "worker", "dist/app.tgz"]
    assert artifacts[0] == {**MANIFEST["artifacts"][0], "metadata": {"tag": "1.4.2", "size": "123"}}
    assert artifacts[1] == {**ONE_ARTIFACT, "input": False, "output": True}
    assert artifacts[2]["type"] == "file"
    assert payload(ledger, "release", 1)["cd"] is True  # an input artifact: a deployment
    assert payload(ledger, "release", 2)["ci"] is True
    assert "lacks location" in caplog.text
    code = main(
        ["--config", str(loopback_config(sim, receiver, tmp_path)), "preview", "release", "1"]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["artifacts"][0]["type"] == "container"


def test_a_manifest_that_is_not_json_is_ignored_and_a_5xx_holds_the_build(sim, ledger) -> None:
    sim.add("bad").builds = [
        SimBuild(1, ago(5), artifacts=["sei-artifacts.json"], files={"sei-artifacts.json": b"{"}),
        SimBuild(2, ago(4), artifacts=["artifact-manifest.json"]),  # listed, but 404: absent
    ]
    sim.add("flaky").builds = [
        SimBuild(1, ago(3), artifacts=["sei-artifacts.json"], files={"sei-artifacts.json": b"{}"})
    ]
    sim.fail("/job/flaky/1/artifact/", 503)
    collect(sim, ledger)
    assert "artifacts" not in payload(ledger, "bad", 1)  # sent, without the manifest's entries
    assert "artifacts" not in payload(ledger, "bad", 2)
    assert ledger.entry("flaky", 1) is None and ledger.held() == {"flaky": {1}}


# -- stages --------------------------------------------------------------------------------------


def test_a_build_aborted_while_an_input_step_waited_has_no_stage_in_progress(sim, ledger):
    build = SimBuild(
        1,
        ago(5),
        result="ABORTED",
        stages=[
            SimStage("Build", "SUCCESS", ago(5), 1000, [("sh", "SUCCESS", ago(5), 900)]),
            SimStage(
                "Approve", "PAUSED_PENDING_INPUT", ago(4), 0, [("input", "IN_PROGRESS", ago(4), 0)]
            ),
        ],
    )
    sim.add("gated", PIPELINE).builds = [build]
    collect(sim, ledger)
    approve = payload(ledger, "gated", 1)["job_run"]["stages"][1]
    assert (approve["state"], approve["result"]) == ("completed", "canceled")
    assert (approve["steps"][0]["state"], approve["steps"][0]["result"]) == (
        "completed",
        "canceled",
    )


def test_a_stage_with_exactly_100_steps_is_sent_logged_once_and_counted(sim, ledger, caplog):
    steps = [(f"s{i}", "SUCCESS", ago(5), 1) for i in range(100)]
    sim.add("big", PIPELINE).builds = [
        SimBuild(n, ago(10 - n), stages=[SimStage("Test", steps=steps)]) for n in (1, 2)
    ]
    metrics = Metrics()
    with caplog.at_level(logging.WARNING):
        collect(sim, ledger, metrics=metrics)
    assert len(payload(ledger, "big", 1)["job_run"]["stages"][0]["steps"]) == 100
    assert caplog.text.count("exactly 100 steps") == 1
    assert "harvester_truncated_stages_total 2.0" in metrics.exposition().decode()


# -- catch-up leaves cursors -----------------------------------------------------------------------


def test_catch_up_leaves_cursors_so_the_next_cycle_lists_nothing_again(
    sim, receiver, tmp_path, capsys
) -> None:
    for name in ("a", "b", "c"):
        sim.add(name).builds = [SimBuild(n, ago(3000 - n * 60)) for n in range(1, 6)]
    running = SimBuild(6, ago(1), in_progress=True, result=None)
    sim.job("c").builds.append(running)
    config = loopback_config(sim, receiver, tmp_path)
    assert main(["--config", str(config), "catch-up", "--since", "30d"]) == 0
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.db'}")
    assert ledger.cursors() == {"a": 5, "b": 5, "c": 6}
    assert ledger.held() == {"c": {6}}
    sim.reset_counts()
    assert main(["--config", str(config), "run", "--once"]) == 0
    assert dict(sim.counts) == {"root": 1, "build": 1}  # discovery + the held build
    running.finish()
    assert main(["--config", str(config), "run", "--once"]) == 0
    assert ("c", 6) in receiver.accepted_keys()
    # a window that ends in the past leaves no cursor behind
    sim.add("d").builds = [SimBuild(1, ago(600))]
    assert main(["--config", str(config), "catch-up", "--since", "1d", "--until", "2h"]) == 0
    assert "d" not in ledger.cursors()
    capsys.readouterr()
    ledger.close()
