"""The SEI plugin's channel end to end: the simulator's logs and test reports, collected into the
outbox, POSTed as the plugin's multipart request to a receiver that parses it as SEI's does."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator

import httpx
import pytest

from harvester.cli.main import main
from harvester.demo import PIPELINE, Receiver, SimBuild, SimStage, Simulator
from harvester.sei.plugin import LOG_TAIL_BYTES, json_part, pack
from tests.helpers import GUID, harvester_for, loopback_config, now_ms

PLUGIN = {"channel": "plugin"}


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as simulator:
        yield simulator


def report(cases: int, failing: int = 0) -> dict:
    return {
        "_class": "hudson.tasks.junit.TestResult",
        "suites": [
            {
                "name": "com.example.AppTest",
                "duration": 1.5,
                "cases": [
                    {
                        "className": "com.example.AppTest",
                        "name": f"test{n}",
                        "duration": 0.01,
                        "status": "FAILED" if n < failing else "PASSED",
                        "skipped": False,
                        "errorDetails": "expected <1> but was <2>" if n < failing else None,
                        "errorStackTrace": "at AppTest.java:12" if n < failing else None,
                    }
                    for n in range(cases)
                ],
            },
            {"name": None, "cases": [{"className": "c", "name": "t", "status": "SKIPPED"}]},
        ],
    }


def failing_pipeline(sim: Simulator, number: int = 1, log: str = "boom\n") -> SimBuild:
    job = sim.add("team/app", PIPELINE)
    build = SimBuild(
        number,
        now_ms() - 60_000,
        result="FAILURE",
        stages=[
            SimStage("Build", steps=[("sh", "SUCCESS", 0, 5)]),
            SimStage("Test", status="FAILED", steps=[("sh", "FAILED", 0, 5)]),
        ],
        logs={"8": log, "6": "never asked for: it succeeded\n"},
        tests=report(5, failing=2),
    )
    job.builds = [build]
    return build


def test_a_failed_pipeline_build_sends_its_failed_steps_log_and_its_tests(
    sim, receiver, tmp_path
) -> None:
    failing_pipeline(sim, log="\x1b[8mha:AAAA\x1b[0mcompiling\nerror: boom\n")
    harvester, _ = harvester_for(sim, receiver, tmp_path, sei=PLUGIN)
    result = harvester.run_cycle()
    harvester.ledger.close()
    assert result.delivery.delivered == 1
    (received,) = [r for r in receiver.received if r.answered == "202"]
    assert received.headers["content-type"].startswith("multipart/form-data; boundary=")
    body = received.body
    assert body["job_name"] == "team/app"
    assert body["jenkins_instance_guid"] == GUID
    assert body["job_normalized_full_name"] == "team/app"
    run = body["job_run"]
    assert (run["id"], run["state"]) == ("1", "FINISHED")
    failed_step = run["stages"][1]["steps"][0]
    assert failed_step["id"] == "8"
    assert body["_logs"] == {failed_step["log"]: "compiling\nerror: boom\n"}  # notes stripped
    assert "log" not in run["stages"][0]["steps"][0]
    assert all(node["durationInMillis"] is not None for node in run["stages"])
    (suite, unnamed) = body["_junit"]
    assert '<testsuite name="com.example.AppTest"' in suite
    assert suite.count("<failure") == 2
    assert 'name="team/app"' in unnamed  # a suite without a name: named after the job
    assert "<skipped" in unnamed
    # Asked of Jenkins: one log (the failed step's), one test report.
    assert sim.counts["log"] == 1
    assert sim.counts["tests"] == 1


def test_a_long_log_is_read_from_its_end_and_the_outbox_resends_the_same_bytes(
    sim, tmp_path
) -> None:
    long = "".join(f"line {n:07d}\n" for n in range(40_000))  # 520 KB
    failing_pipeline(sim, log=long)
    with Receiver(token="sei-secret-token", instances={GUID}) as receiver:
        receiver.admin = False
        harvester, _ = harvester_for(sim, receiver, tmp_path, sei=PLUGIN)
        first = harvester.run_cycle()
        assert first.delivery.delivered == 0
        refused = receiver.received[-1]
        assert refused.answered == "403"
        entry = harvester.ledger.entries()[0]
        # Like a 401: the cycle's delivery stops, the row stays pending with no attempt spent.
        assert (entry.status, entry.attempts) == ("pending", 0)
        assert first.exit_code == 4
        (refusal,) = [a for a in harvester.ledger.history(entry.id) if a.http_status == 403]
        assert "needs an API key with the Admin role" in (refusal.error or "")
        receiver.admin = True
        sim.job("team/app").builds[0].logs["8"] = "changed in Jenkins since"
        harvester.gate.first_cycle = True
        second = harvester.run_cycle()
        harvester.ledger.close()
    assert second.delivery.delivered == 1
    sent = receiver.received[-1].body
    (text,) = sent["_logs"].values()
    assert len(text.encode()) == LOG_TAIL_BYTES  # the last 150 KiB, captured at collection
    assert long.endswith(text)
    assert sim.counts["log"] == 2  # the size first (from an offset), then the tail


def test_a_log_or_report_jenkins_fails_to_give_holds_the_build(sim, receiver, tmp_path) -> None:
    failing_pipeline(sim)
    sim.fail("/job/team/job/app/1/execution/node/8/log", 503)
    harvester, _ = harvester_for(sim, receiver, tmp_path, sei=PLUGIN)
    result = harvester.run_cycle()
    assert result.delivery.delivered == 0
    assert harvester.ledger.entries() == []
    assert harvester.ledger.held() == {"team/app": {1}}
    sim.heal()
    harvester.run_cycle()
    harvester.ledger.close()
    assert receiver.accepted_keys() == [("team/app", 1)]


def test_a_node_without_log_is_sent_without_it_and_the_webhook_channel_sends_none(
    sim, receiver, tmp_path
) -> None:
    build = failing_pipeline(sim)
    build.logs.clear()  # 404 for every log
    harvester, _ = harvester_for(sim, receiver, tmp_path, sei=PLUGIN)
    harvester.run_cycle()
    entry = harvester.ledger.entries()[0]
    harvester.ledger.close()
    assert json.loads(entry.files_summary or "{}")["logs_missing"] == 1
    body = receiver.accepted()[0]
    assert body["_logs"] == {}
    assert len(body["_junit"]) == 2


def test_check_preview_and_ledger_show_on_the_plugin_channel(
    sim, receiver, tmp_path, capsys
) -> None:
    failing_pipeline(sim)
    config = loopback_config(sim, receiver, tmp_path, sei=PLUGIN)
    assert main(["--config", str(config), "check"]) == 0
    out = capsys.readouterr().out
    assert "(plugin channel) refused a request of an unknown type (HTTP 400" in out
    assert receiver.accepted() == []  # nothing stored
    receiver.admin = False
    assert main(["--config", str(config), "check"]) == 4
    assert "needs an API key with the Admin role" in capsys.readouterr().out
    receiver.admin = True
    zipped = tmp_path / "out.zip"
    assert main(["--config", str(config), "preview", "team/app", "1", "--out", str(zipped)]) == 0
    captured = capsys.readouterr()
    shown = json.loads(captured.out)
    assert shown["job_name"] == "team/app"
    assert "levelops_junit_reports.zip" in captured.err
    assert zipped.read_bytes()[:2] == b"PK"
    assert main(["--config", str(config), "run", "--once"]) == 0
    capsys.readouterr()
    assert main(["--config", str(config), "ledger", "show", "team/app", "1", "--logs"]) == 0
    out = capsys.readouterr().out
    assert "tests: 3 passed, 2 failed, 1 skipped in 2 suite file(s)" in out
    assert "failing: com.example.AppTest.test0" in out
    assert "node 8 'sh'" in out
    assert "boom" in out  # --logs: the text


def test_a_failed_freestyle_build_sends_its_console_tail_decoded_with_replacement(
    sim, receiver, tmp_path
) -> None:
    job = sim.add("free")
    job.builds = [
        SimBuild(
            4,
            now_ms() - 60_000,
            result="FAILURE",
            logs={"": b"Started by user alice\n\xff\xfe not UTF-8\nBUILD FAILED\n"},
            tests=report(3),
        ),
        SimBuild(5, now_ms() - 30_000),  # succeeded, no report: no request for either
    ]
    harvester, _ = harvester_for(sim, receiver, tmp_path, sei=PLUGIN)
    harvester.run_cycle()
    harvester.ledger.close()
    by_number = {body["build_number"]: body for body in receiver.accepted()}
    failed = by_number[4]
    (text,) = failed["_logs"].values()
    assert text == "Started by user alice\n\ufffd\ufffd not UTF-8\nBUILD FAILED\n"
    assert failed["job_run"]["log"] == next(iter(failed["_logs"]))
    assert failed["job_run"]["stages"] == []
    assert len(failed["_junit"]) == 2
    assert by_number[5]["_logs"] == {} and by_number[5]["_junit"] == []
    assert (by_number[4]["_file"], by_number[5]["_file"]) == (
        True,
        False,
    )  # a file part only when needed
    assert (sim.counts["log"], sim.counts["tests"]) == (1, 1)


def test_logs_stop_at_5_mib_a_build_the_last_failed_dropped_and_counted(
    sim, receiver, tmp_path
) -> None:
    job = sim.add("many", PIPELINE)
    steps = [(f"s{n}", "FAILED", 0, 5) for n in range(40)]
    build = SimBuild(
        1, now_ms() - 60_000, result="FAILURE", stages=[SimStage("T", "FAILED", steps=steps)]
    )
    # Node ids: the stage is 5, its steps 6..45; each log a full 150 KiB tail.
    build.logs = {str(6 + n): f"{n:02d}" + "x" * (LOG_TAIL_BYTES - 2) for n in range(40)}
    job.builds = [build]
    harvester, _ = harvester_for(sim, receiver, tmp_path, sei=PLUGIN)
    harvester.run_cycle()
    summary = json.loads(harvester.ledger.entries()[0].files_summary or "{}")
    harvester.ledger.close()
    kept = 5 * 1024 * 1024 // LOG_TAIL_BYTES  # 34 logs of 150 KiB fit in 5 MiB
    assert len(summary["logs"]) == kept
    assert summary["logs_dropped"] == 40 - kept
    assert [item["node"] for item in summary["logs"]] == [str(6 + n) for n in range(kept)]
    body = receiver.accepted()[0]
    assert sum(len(text) for text in body["_logs"].values()) <= 5 * 1024 * 1024


def test_the_receiver_rejects_what_sei_rejects(receiver) -> None:
    url = receiver.url.removesuffix("/v1/custom-cicd") + "/v1/generic-requests/multipart"
    auth = {"Authorization": "Bearer sei-secret-token"}
    payload = {  # as the webhook has it; json_part renames it as the plugin does
        "pipeline": "j",
        "instance_name": "J",
        "instance_guid": GUID,
        "job_full_name": "j",
        "qualified_name": "j",
        "result": "success",
        "build_number": 1,
        "start_time": 1_700_000_000_000,
        "duration": 1,
    }
    good = json_part(payload, {})

    def post(json_part: bytes, zipped: bytes | None = None, *, filename: bool = True) -> int:
        files = {"file": ("complete-data-temp-1.zip", zipped, "application/zip")} if zipped else {}
        if filename:
            files["json"] = ("json", json_part, "application/json")
            return httpx.post(url, files=files, headers=auth).status_code
        # A form field without a filename: SEI drops it, so the request has no json part.
        return httpx.post(
            url, data={"json": json_part.decode()}, files=files or {"x": ("x", b"")}, headers=auth
        ).status_code

    assert post(good) == 202
    assert post(good, filename=False) == 400
    assert post(good, zip_of([("not-a-uuid", b"log")])) == 400
    assert post(good, zip_of([("junit.xml", b"x")], nested=True)) == 400
    assert post(good, zip_of([("r.xml", b"<testsuites/>")], nested=True)) == 400
    assert post(good, zip_of([("r.xml", b'<testsuite name="s"/>')], nested=True)) == 202
    assert post(json_part({**payload, "pipeline": ""}, {})) == 400
    assert receiver.accepted_keys() == [("j", 1), ("j", 1)]


def zip_of(entries: list[tuple[str, bytes]], *, nested: bool = False) -> bytes:
    data = pack({}, entries) if nested else None
    if nested:
        assert data is not None
        return data
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in entries:
            archive.writestr(name, content)
    return buffer.getvalue()
