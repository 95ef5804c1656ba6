"""The plugin channel's pure parts: endpoint, payload, json part, zip and JUnit conversion."""

from __future__ import annotations

import io
import json
import zipfile
from xml.etree import ElementTree

from harvester.sei.plugin import (
    JUNIT_ZIP,
    failed_nodes,
    json_part,
    junit_files,
    pack,
    plugin_payload,
    strip_notes,
)
from harvester.sei.webhook import plugin_url

PAYLOAD = {
    "pipeline": "a/mbp",
    "job_full_name": "a/mbp/main",
    "qualified_name": "a/mbp/main",
    "instance_name": "J",
    "instance_guid": "g",
    "instance_url": "https://j/",
    "start_time": 1_700_000_000_000,
    "duration": 5000,
    "result": "failure",
    "build_number": 7,
    "user_id": "alice",
    "ci": True,
    "cd": False,
    "job_run": {
        "stages": [
            {
                "id": "5",
                "displayName": "Build",
                "result": "failed",
                "durationInMillis": None,
                "steps": [
                    {"id": "6", "displayName": "sh", "result": "succeeded", "durationInMillis": 3},
                    {"id": "7", "displayName": "sh", "result": "failed", "durationInMillis": 4},
                ],
            },
            {"id": "8", "displayName": "Deploy", "result": "canceled", "steps": []},
        ]
    },
}


def test_endpoint() -> None:
    assert plugin_url("https://app.harness.io/gratis/sei/api/v1/custom-cicd") == (
        "https://app.harness.io/gratis/sei/api/v1/generic-requests/multipart"
    )
    assert plugin_url("https://sei.example.com/v1/custom-cicd/") == (
        "https://sei.example.com/v1/generic-requests/multipart"
    )
    assert (
        plugin_url("http://127.0.0.1:9/hook")
        == "http://127.0.0.1:9/hook/v1/generic-requests/multipart"
    )


def test_failed_nodes_steps_stages_without_steps_and_the_build() -> None:
    assert [(n.node, n.name) for n in failed_nodes(PAYLOAD, "FAILURE")] == [
        ("7", "sh"),
        ("8", "Deploy"),
    ]
    freestyle = {"job_full_name": "f", "build_number": 1}
    assert [(n.node, n.name) for n in failed_nodes(freestyle, "FAILURE")] == [(None, "f")]
    assert failed_nodes(freestyle, "SUCCESS") == []


def test_plugin_payload_names_logs_and_never_a_null_duration() -> None:
    converted = plugin_payload(PAYLOAD, {"7": "uuid-7", "": "uuid-build"})
    assert converted["job_name"] == "a/mbp"
    assert converted["job_normalized_full_name"] == "a/mbp/main"
    assert converted["jenkins_instance_guid"] == "g"
    assert "pipeline" not in converted and "qualified_name" not in converted
    run = converted["job_run"]
    assert (run["id"], run["state"], run["log"]) == ("7", "FINISHED", "uuid-build")
    assert run["startTime"] == "2023-11-14T22:13:20.000Z"
    stage = run["stages"][0]
    assert stage["durationInMillis"] == 0
    assert stage["steps"][1]["log"] == "uuid-7"
    assert "log" not in stage["steps"][0]
    envelope = json.loads(json_part(PAYLOAD, {}))
    assert envelope["request_type"] == "JenkinsPluginJobRunComplete"
    assert json.loads(envelope["payload"])["build_number"] == 7  # a string holding JSON


def test_the_zip_is_the_same_bytes_every_time() -> None:
    data = pack(
        {"0f8fad5b-d9cb-469f-a165-70867728950e": "log text"},
        [("suite-1.xml", b"<testsuite name='s'/>")],
    )
    assert data is not None
    assert data == pack(
        {"0f8fad5b-d9cb-469f-a165-70867728950e": "log text"},
        [("suite-1.xml", b"<testsuite name='s'/>")],
    )
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        assert [i.filename for i in infos] == ["0f8fad5b-d9cb-469f-a165-70867728950e", JUNIT_ZIP]
        assert all(
            i.compress_type == zipfile.ZIP_DEFLATED and not i.flag_bits & 0x08 for i in infos
        )
        assert not any(i.is_dir() for i in infos)
    assert pack({}, []) is None


def test_junit_conversion_caps_counts_and_names() -> None:
    report = {
        "suites": [
            {
                "name": "s1",
                "duration": 2,
                "cases": [
                    {"className": "C", "name": "ok", "duration": 0.5, "status": "PASSED"},
                    {
                        "className": "C",
                        "name": "bad",
                        "duration": "x",
                        "status": "REGRESSION",
                        "errorDetails": "m" * 2000,
                        "errorStackTrace": "s" * 2000,
                    },
                    {"className": "C", "name": "ok", "status": "PASSED"},  # repeated: once
                    {"className": "C", "name": "skip", "status": "PASSED", "skipped": True},
                    {"className": "C", "name": "fixed", "status": "FIXED"},
                ],
            },
            {"name": "", "cases": [{"className": "D", "name": '<&>"', "status": "FAILED"}]},
        ]
    }
    files, counts = junit_files(report, "team/app")
    assert (counts.passed, counts.failed, counts.skipped, counts.duplicates) == (2, 2, 1, 1)
    assert counts.failing == ["C.bad", 'D.<&>"']
    first = ElementTree.fromstring(files[0][1])
    assert first.tag == "testsuite" and first.get("name") == "s1"
    failure = first.find("testcase[@name='bad']/failure")
    assert (
        failure is not None
        and len(failure.get("message", "")) == 1000
        and len(failure.text or "") == 1000
    )
    assert first.find("testcase[@name='bad']").get("time") == "0.000"
    second = ElementTree.fromstring(files[1][1])
    assert second.get("name") == "team/app"  # no name: the job's
    assert second.find("testcase").get("name") == '<&>"'  # escaped in the XML, whole in the tree
    small, capped = junit_files(report, "team/app", limit=len(files[0][1]))
    assert len(small) == 1 and capped.suites_dropped == ["team/app"]


def test_console_notes_are_stripped() -> None:
    assert (
        strip_notes("a\x1b[8mha:AAAAWB+LCAAAAAAAAP9b85aBtbiIQSmjNKU4P08vOT+vOD8nVc85PyU=\x1b[0mb")
        == "ab"
    )
