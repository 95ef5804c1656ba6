"""Collecting over real loopback HTTP against the Jenkins simulator, into a real SQLite ledger."""

from __future__ import annotations

import itertools
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from harvester.app import mapping_rules
from harvester.collect.collector import Collector
from harvester.config import settings_from_mapping
from harvester.demo import (
    MULTIBRANCH,
    ORG_FOLDER,
    PIPELINE,
    SimBuild,
    SimJob,
    SimStage,
    Simulator,
    branch_job_name,
)
from harvester.errors import JenkinsUnreachable, NotActive
from harvester.jenkins.client import JenkinsClient
from harvester.ledger import Ledger
from harvester.sei.identity import mangle
from harvester.util.timeparse import to_epoch_ms
from tests.helpers import config_dict

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
NOW_MS = to_epoch_ms(NOW)


def ago(minutes: int) -> int:
    return NOW_MS - minutes * 60_000


@pytest.fixture
def sim() -> Simulator:
    with Simulator(root_url="https://wrong-root.example.com/ci/") as simulator:
        yield simulator


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.db'}", controller="ci")
    yield ledger
    ledger.close()


def make_collector(sim: Simulator, ledger: Ledger, **config: Any) -> Collector:
    settings = settings_from_mapping(config_dict(jenkins_url=sim.url, **config))
    jenkins = JenkinsClient(
        sim.url, sim.username, sim.api_token, timeout=5, max_concurrency=4, backoff_factor=0.01
    )
    return Collector(
        jenkins,
        ledger,
        mapping_rules(settings),
        include=settings.jenkins.include,
        exclude=settings.jenkins.exclude,
        clock=lambda: NOW,
        workers=4,
    )


def collect(sim: Simulator, ledger: Ledger, since: timedelta = timedelta(days=7), **config: Any):
    return make_collector(sim, ledger, **config).collect(NOW - since)


def payloads(ledger: Ledger) -> dict[tuple[str, int], dict[str, Any]]:
    return {(e.job, e.number): json.loads(e.payload) for e in ledger.entries()}


def test_nested_folders_with_spaces_and_non_ascii(sim: Simulator, ledger: Ledger) -> None:
    deep = sim.add("Équipe A/sub folder/третий/app ünï", PIPELINE)
    deep.builds = [
        SimBuild(1, ago(30), stages=[SimStage("Build", steps=[("sh", "SUCCESS", ago(30), 5)])])
    ]
    top = sim.add("plain")
    top.builds = [SimBuild(1, ago(20))]
    report = collect(sim, ledger)
    assert report.job_errors == {}
    got = payloads(ledger)
    payload = got[("Équipe A/sub folder/третий/app ünï", 1)]
    assert payload["job_full_name"] == "Équipe A/sub folder/третий/app ünï"
    assert payload["job_run"]["stages"][0]["steps"][0]["displayName"] == "sh"
    assert ("plain", 1) in got
    # The simulator's JSON carries a root URL that does not resolve (wrong-root.example.com):
    # collecting without job errors shows no URL from Jenkins' JSON was followed.
    assert sim.counts["crumb"] == 0


def test_multibranch_and_organization_folder(sim: Simulator, ledger: Ledger) -> None:
    org = sim.add("acme", ORG_FOLDER)
    repo = SimJob("webapp", MULTIBRANCH)
    org.children.append(repo)
    for branch in ("feature/x", "PR-7", "main"):
        job = SimJob(branch_job_name(branch), PIPELINE)
        job.builds = [
            SimBuild(
                2,
                ago(10),
                branch=branch,
                commits=["ab" * 20],
                repo_url="https://git/webapp.git",
                stages=[SimStage("Build")],
            )
        ]
        repo.children.append(job)
    collect(sim, ledger)
    got = payloads(ledger)
    assert set(got) == {
        ("acme/webapp/feature%2Fx", 2),
        ("acme/webapp/PR-7", 2),
        ("acme/webapp/main", 2),
    }
    feature = got[("acme/webapp/feature%2Fx", 2)]
    assert feature["pipeline"] == "acme/webapp"
    assert feature["job_full_name"] == "acme/webapp/feature/x"
    assert feature["branch_name"] == "feature/x"
    assert got[("acme/webapp/PR-7", 2)]["branch_name"] == "PR-7"


def test_plugin_identities_name_jobs_and_upstream_jobs_by_their_directories(
    sim: Simulator, ledger: Ledger
) -> None:
    org = sim.add("acme", ORG_FOLDER)
    repo = SimJob("web app", MULTIBRANCH)
    org.children.append(repo)
    branch = SimJob(branch_job_name("feature/x"), PIPELINE)
    branch.builds = [SimBuild(3, ago(20), branch="feature/x", stages=[SimStage("Build")])]
    repo.children.append(branch)
    deploy = sim.add("ops/deploy")
    upstream = {
        "_class": "hudson.model.Cause$UpstreamCause",
        "upstreamProject": "acme/web app/feature%2Fx",
        "upstreamBuild": 3,
    }
    deploy.builds = [SimBuild(1, ago(10), causes=[upstream])]
    collect(sim, ledger, mapping={"job_identity": "plugin"})
    got = payloads(ledger)  # the ledger keeps Jenkins' names; the payloads carry the plugin's
    feature = got[("acme/web app/feature%2Fx", 3)]
    path = f"acme/jobs/{mangle('web app')}/branches/{mangle('feature/x')}"
    assert feature["job_full_name"] == path
    assert feature["qualified_name"] == f"acme/{mangle('web app')}/{mangle('feature/x')}"
    assert feature["pipeline"] == mangle("web app")
    assert feature["branch_name"] == mangle("feature/x")
    ops = got[("ops/deploy", 1)]
    assert (ops["job_full_name"], ops["qualified_name"], ops["pipeline"]) == (
        "ops/jobs/deploy",
        "ops/deploy",
        "deploy",
    )
    (trigger,) = ops["trigger_chain"]
    assert trigger == {"id": path, "type": "UpstreamCause", "job_run_number": "3"}


def test_in_progress_held_back_and_out_of_order_completion(sim: Simulator, ledger: Ledger) -> None:
    job = sim.add("app")
    job.builds = [
        SimBuild(1, ago(50)),
        SimBuild(2, ago(40), in_progress=True, result=None),
        SimBuild(3, ago(30)),
    ]
    report = collect(sim, ledger)
    assert report.builds_held == 1
    assert set(payloads(ledger)) == {("app", 1), ("app", 3)}
    assert ledger.cursors() == {"app": 3}  # past the running build, which is held by number
    assert ledger.held() == {"app": {2}}
    sim.reset_counts()
    collect(sim, ledger)  # still running: re-checked on its own, build 3 not collected twice
    assert len(ledger.entries()) == 2
    assert sim.counts["build"] == 1 and "job" not in sim.counts  # 1 request, no listing
    job.builds[1].finish("ABORTED")
    job.builds.append(SimBuild(4, ago(5)))
    collect(sim, ledger)
    got = payloads(ledger)
    assert set(got) == {("app", 1), ("app", 2), ("app", 3), ("app", 4)}
    assert got[("app", 2)]["result"] == "failure"
    assert ledger.cursors() == {"app": 4}
    assert ledger.held() == {}


def test_pipeline_finishing_is_held_until_in_progress_is_false(
    sim: Simulator, ledger: Ledger
) -> None:
    job = sim.add("pipe", PIPELINE)
    build = SimBuild(1, ago(5), stages=[SimStage("Build")])
    job.builds = [build]
    # building false but inProgress true: the Pipeline is still writing its final state
    build.in_progress = True
    build.building = False
    build.result = "SUCCESS"
    collect(sim, ledger)
    assert ledger.entries() == []
    build.finish()
    collect(sim, ledger)
    assert [e.number for e in ledger.entries()] == [1]


def test_since_window_on_first_sight_and_cursor_afterwards(sim: Simulator, ledger: Ledger) -> None:
    job = sim.add("old")
    job.builds = [SimBuild(1, ago(60 * 24 * 10)), SimBuild(2, ago(60))]
    collect(sim, ledger, since=timedelta(days=7))
    assert set(payloads(ledger)) == {("old", 2)}
    assert ledger.cursors() == {"old": 2}


def test_idle_cycle_costs_one_request(sim: Simulator, ledger: Ledger) -> None:
    for n in range(30):
        sim.add(f"f{n % 3}/sub/job{n}").builds = [SimBuild(1, ago(10))]
    collect(sim, ledger)
    sim.reset_counts()
    report = collect(sim, ledger)
    assert report.builds_collected == 0
    assert sum(sim.counts.values()) == 1


def test_a_cursor_moved_during_discovery_is_not_a_re_created_job(
    sim: Simulator, ledger: Ledger
) -> None:
    # A catch-up beside the cycle moves the job's cursor past the lastBuild the cycle's discovery
    # is about to report (it saw newer builds). That is no evidence of a re-created job: the
    # cursor was read before Jenkins was asked. Read after, the job was restarted from #1.
    sim.add("app").builds = [SimBuild(n, ago(60 - n)) for n in range(1, 4)]
    collect(sim, ledger)
    assert ledger.cursors() == {"app": 3}
    sim.slow("/api/json", 1.0)
    catch_up_beside = threading.Timer(
        0.3, lambda: ledger.add_pending([], now=NOW, cursor=("app", 5))
    )
    catch_up_beside.start()
    report = collect(sim, ledger)
    catch_up_beside.join()
    assert report.jobs_recreated == 0
    assert ledger.cursors() == {"app": 5}


@pytest.mark.parametrize("admitted", [0, 2], ids=["at-discovery", "at-a-build"])
def test_a_replica_that_loses_its_lease_mid_cycle_stops_and_blames_no_build(
    sim: Simulator, ledger: Ledger, admitted: int
) -> None:
    # The lease lost before discovery, or after the builds page: the cycle stops (NotActive),
    # not "Jenkins unreachable", and no build is held back on its account.
    sim.add("app", PIPELINE).builds = [
        SimBuild(n, ago(60 - n), stages=[SimStage("Build")]) for n in range(1, 4)
    ]
    collector = make_collector(sim, ledger)
    requests = itertools.count()
    collector.jenkins.admit = lambda: next(requests) < admitted
    with pytest.raises(NotActive):
        collector.collect(NOW - timedelta(days=7))
    assert ledger.held() == {}
    assert ledger.entries() == []


def test_request_budget_of_a_cycle(sim: Simulator, ledger: Ledger) -> None:
    up = sim.add("up")
    up.builds = [
        SimBuild(
            9, ago(100), causes=[{"_class": "hudson.model.Cause$UserIdCause", "userId": "dana"}]
        )
    ]
    collect(sim, ledger)
    pipe = sim.add("pipe", PIPELINE)
    pipe.builds = [
        SimBuild(
            n,
            ago(50 - n),
            stages=[SimStage("Build")],
            causes=[
                {
                    "_class": "hudson.model.Cause$UpstreamCause",
                    "upstreamProject": "up",
                    "upstreamBuild": 9,
                }
            ],
        )
        for n in range(1, 6)
    ]
    free = sim.add("free")
    free.builds = [SimBuild(1, ago(10))]
    for n in range(20):
        sim.add(f"idle{n}")
    sim.reset_counts()
    collect(sim, ledger)
    got = payloads(ledger)
    assert got[("pipe", 3)]["user_id"] == "dana"
    # 1 discovery + 2 jobs with new builds + 5 Pipeline builds + 1 distinct upstream build
    assert sum(sim.counts.values()) == 1 + 2 + 5 + 1


def test_backlog_of_150_builds_is_paged(sim: Simulator, ledger: Ledger) -> None:
    job = sim.add("busy")
    job.builds = [SimBuild(n, ago(1000 - n)) for n in range(1, 151)]
    collect(sim, ledger)
    assert len(ledger.entries()) == 150
    assert any("allBuilds" in p for p in sim.paths)
    assert ledger.cursors() == {"busy": 150}


def test_one_job_failing_does_not_stop_the_others(sim: Simulator, ledger: Ledger) -> None:
    for name in ("a", "b", "c", "d"):
        sim.add(name).builds = [SimBuild(1, ago(10))]
    sim.fail("/job/b/", 500)
    sim.fail("/job/c/", 200, "<html>login</html>")  # malformed: not JSON
    sim.fail("/job/d/", 403)  # no permission on this one job: not "Jenkins unreachable"
    report = collect(sim, ledger)
    assert set(report.job_errors) == {"b", "c", "d"}
    assert "HTTP 500" in report.job_errors["b"]
    assert "not JSON" in report.job_errors["c"]
    assert "denies access" in report.job_errors["d"]
    assert set(payloads(ledger)) == {("a", 1)}
    sim.heal()
    collect(sim, ledger)  # retried next cycle
    assert set(payloads(ledger)) == {("a", 1), ("b", 1), ("c", 1), ("d", 1)}


def test_wfapi_missing_sends_without_stages_and_5xx_holds_back(
    sim: Simulator, ledger: Ledger, caplog
) -> None:
    for name in ("p1", "p2"):
        sim.add(name, PIPELINE).builds = [SimBuild(1, ago(10), stages=[SimStage("Build")])]
    sim.wfapi_installed = False
    collect(sim, ledger)
    got = payloads(ledger)
    assert "job_run" not in got[("p1", 1)] and "job_run" not in got[("p2", 1)]
    assert sum("wfapi answered 404" in r.message for r in caplog.records) == 1  # once per cycle
    sim.wfapi_installed = True
    sim.add("p3", PIPELINE).builds = [SimBuild(1, ago(5), stages=[SimStage("Build")])]
    sim.fail("/job/p3/1/wfapi", 503)
    report = collect(sim, ledger)
    assert report.builds_held == 1
    assert ("p3", 1) not in payloads(ledger)  # never sent without stages on a 5xx
    sim.heal()
    collect(sim, ledger)
    assert "job_run" in payloads(ledger)[("p3", 1)]


def test_malformed_upstream_answer_holds_the_build_back(sim: Simulator, ledger: Ledger) -> None:
    # An upstream answer that is JSON but not an object is malformed, not "the upstream build is
    # gone": the build must not be sent with the wrong user (SYSTEM).
    sim.add("up").builds = [
        SimBuild(9, ago(100), causes=[{"_class": "hudson.model.Cause$UserIdCause", "userId": "u"}])
    ]
    sim.add("down").builds = [
        SimBuild(
            1,
            ago(10),
            causes=[
                {
                    "_class": "hudson.model.Cause$UpstreamCause",
                    "upstreamProject": "up",
                    "upstreamBuild": 9,
                }
            ],
        )
    ]
    for malformed in ("[]", '{"actions": 7}'):  # not an object; an object that does not validate
        sim.fail("/job/up/9/api", 200, malformed)
        report = collect(sim, ledger)
        assert report.builds_held == 1
        assert not report.job_errors  # held back as a malformed answer, not an unexpected crash
        assert ("down", 1) not in payloads(ledger)
    sim.heal()
    collect(sim, ledger)
    assert payloads(ledger)[("down", 1)]["user_id"] == "u"


def test_malformed_wfapi_answer_holds_the_build_back(sim: Simulator, ledger: Ledger) -> None:
    stages = [SimStage("Build", "SUCCESS", ago(5), 10, [("sh", "SUCCESS", 0, 1)])]
    sim.add("p", PIPELINE).builds = [SimBuild(1, ago(5), stages=stages)]
    # Not JSON, not an object, an object that does not validate: each read twice (the fast
    # parser, then json.loads to say which), and each holds the build back.
    for malformed in ("<html>", "[]", '{"stages": 7}'):
        sim.fail("/job/p/1/wfapi", 200, malformed)
        report = collect(sim, ledger)
        assert report.builds_held == 1, malformed
        assert not report.job_errors
        assert ("p", 1) not in payloads(ledger)
    sim.heal()
    collect(sim, ledger)
    assert payloads(ledger)[("p", 1)]["job_run"]["stages"][0]["steps"][0]["displayName"] == "sh"


def test_a_lone_surrogate_in_wfapi_is_sent_escaped(sim: Simulator, ledger: Ledger) -> None:
    # JSON may carry "\ud800" (Java strings can hold one); pydantic-core's parser refuses it,
    # json.loads takes it, and the body escapes it again: the build is sent, not held forever.
    stages = [SimStage("Build \ud800", "SUCCESS", ago(5), 10, [("sh", "SUCCESS", 0, 1)])]
    sim.add("p", PIPELINE).builds = [SimBuild(1, ago(5), stages=stages)]
    report = collect(sim, ledger)
    assert report.builds_held == 0
    assert payloads(ledger)[("p", 1)]["job_run"]["stages"][0]["displayName"] == "Build \ud800"


def test_include_exclude(sim: Simulator, ledger: Ledger) -> None:
    for name in ("team-a/app", "team-a/tools/lint", "team-b/app"):
        sim.add(name).builds = [SimBuild(1, ago(10))]
    collect(sim, ledger, jenkins={"include": ["team-a/**"], "exclude": ["**/lint"]})
    assert set(payloads(ledger)) == {("team-a/app", 1)}


def test_jenkins_unreachable_and_bad_credentials(sim: Simulator, ledger: Ledger) -> None:
    collector = make_collector(sim, ledger)
    collector.jenkins = JenkinsClient(sim.url, "harvester", "wrong", timeout=5)
    with pytest.raises(JenkinsUnreachable, match="credentials"):
        collector.collect(NOW)
    collector.jenkins = JenkinsClient("http://127.0.0.1:9/", "u", "t", timeout=1, retries=0)
    with pytest.raises(JenkinsUnreachable, match="cannot list"):
        collector.collect(NOW)


def test_retries_transient_errors_within_a_request(sim: Simulator, ledger: Ledger) -> None:
    sim.add("flaky").builds = [SimBuild(1, ago(10))]
    # fail twice, then recover: the retry adapter hides it from the cycle
    calls = {"n": 0}
    original = sim.failures

    class Flaky(dict):  # type: ignore[type-arg]
        def items(self):
            calls["n"] += 1
            return [("/job/flaky/", (503, "busy"))] if calls["n"] <= 3 else []

    sim.failures = Flaky()
    report = collect(sim, ledger)
    sim.failures = original
    assert report.job_errors == {}
    assert ("flaky", 1) in payloads(ledger)


def test_stop_part_way_through_a_backlog_does_not_skip_older_builds(
    sim: Simulator, ledger: Ledger
) -> None:
    job = sim.add("busy")
    job.builds = [SimBuild(n, ago(1000 - n)) for n in range(1, 151)]
    sim.latency_ms = 300
    collector = make_collector(sim, ledger)

    def stop_after_first_page() -> None:
        while sim.counts["job"] < 1:
            threading.Event().wait(0.01)
        collector.stop.set()  # SIGTERM while the first page (builds 150..51) is in flight

    stopper = threading.Thread(target=stop_after_first_page)
    stopper.start()
    collector.collect(NOW - timedelta(days=7))
    stopper.join()
    assert len(ledger.entries()) == 100
    assert ledger.cursors().get("busy", 0) <= 50  # builds 1..50 were never read
    sim.latency_ms = 0
    collect(sim, ledger)
    assert len(ledger.entries()) == 150
    assert ledger.cursors() == {"busy": 150}


def test_simulator_wfapi_answers_like_the_plugin(sim: Simulator) -> None:
    # The benchmark's naive baseline depends on this: describe without fullStages has no steps;
    # a stage's own describe (its _links.self) has them.
    job = sim.add("p", PIPELINE)
    job.builds.append(
        SimBuild(
            1, ago(5), stages=[SimStage("Build", "SUCCESS", ago(5), 10, [("sh", "SUCCESS", 0, 1)])]
        )
    )
    jenkins = JenkinsClient(sim.url, sim.username, sim.api_token, timeout=5)
    brief = jenkins.get_json("job/p/1/wfapi/describe", kind="wfapi")
    assert "stageFlowNodes" not in brief["stages"][0]
    full = jenkins.pipeline_run("p", 1)
    assert full is not None
    assert [node.name for node in full.stages[0].stageFlowNodes] == ["sh"]
    stage = jenkins.get_json(brief["stages"][0]["_links"]["self"]["href"].lstrip("/"), kind="wfapi")
    assert stage["name"] == "Build"
    assert [node["id"] for node in stage["stageFlowNodes"]] == [
        node.id for node in full.stages[0].stageFlowNodes
    ]
