"""The SEI Jenkins plugin's channel, pure: its payload (the webhook payload under the plugin's field
names, with each failed node's log named), its ``json`` part, the zip of logs
and JUnit reports, and the conversion of Jenkins' test report to the JUnit XML the receiver reads.
Data in, bytes out; no I/O, clock or environment (the log names are given, not drawn)."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

from harvester.sei.mapping import iso_millis

REQUEST_TYPE = "JenkinsPluginJobRunComplete"
JUNIT_ZIP = "levelops_junit_reports.zip"
LOG_TAIL_BYTES = 150 * 1024
"""The last 150 KiB of each failed node's log, as the plugin sends."""
MAX_LOG_BYTES = 5 * 1024 * 1024
"""At most 5 MiB of logs per build."""
MAX_TEST_TEXT = 1000
"""A failure's message and stack, cut to 1000 characters each."""
MAX_TESTS_BYTES = 8 * 1024 * 1024
"""At most 8 MiB of JUnit XML per build: the first suites up to it; the rest counted and named."""
FAILED_NODE_RESULTS = frozenset({"failed", "succeededWithIssues", "canceled"})
"""A stage's or step's payload result for wfapi's FAILED, UNSTABLE and ABORTED."""
FAILED_BUILD_RESULTS = frozenset({"FAILURE", "UNSTABLE", "ABORTED"})

# Jenkins' console notes: ESC[8mha:<base64>ESC[0m, hidden markup a plain-text log may carry.
_CONSOLE_NOTE = re.compile(r"\x1b\[8mha:[A-Za-z0-9+/=]*\x1b\[0m")


def strip_notes(text: str) -> str:
    return _CONSOLE_NOTE.sub("", text)


@dataclass(frozen=True, slots=True)
class FailedNode:
    """A node whose log the plugin sends: a step, a stage without steps, or (``node`` None) the
    build itself when it failed without stages."""

    node: str | None
    name: str


def failed_nodes(payload: Mapping[str, Any], jenkins_result: str) -> list[FailedNode]:
    """The nodes whose logs go with a build, in the order the build ran them."""
    run = payload.get("job_run")
    stages = (run or {}).get("stages") or []
    if not stages:
        if jenkins_result in FAILED_BUILD_RESULTS:
            return [FailedNode(None, str(payload.get("job_full_name", "")))]
        return []
    found = []
    for stage in stages:
        steps = stage.get("steps") or []
        if not steps and stage.get("result") in FAILED_NODE_RESULTS:
            found.append(FailedNode(str(stage["id"]), str(stage.get("displayName", ""))))
        found += [
            FailedNode(str(step["id"]), str(step.get("displayName", "")))
            for step in steps
            if step.get("result") in FAILED_NODE_RESULTS
        ]
    return found


# -- the payload -------------------------------------------------------------------------------

_RENAMED = (
    ("job_name", "pipeline"),
    ("user_id", "user_id"),
    ("job_run_params", "job_run_params"),
    ("repo_url", "repo_url"),
    ("start_time", "start_time"),
    ("result", "result"),
    ("duration", "duration"),
    ("build_number", "build_number"),
    ("jenkins_instance_guid", "instance_guid"),
    ("jenkins_instance_name", "instance_name"),
    ("jenkins_instance_url", "instance_url"),
    ("job_full_name", "job_full_name"),
    ("job_normalized_full_name", "qualified_name"),
    ("branch_name", "branch_name"),
    ("scm_commit_ids", "scm_commit_ids"),
    ("trigger_chain", "trigger_chain"),
    ("artifacts", "artifacts"),
    ("ci", "ci"),
    ("cd", "cd"),
)


def _node(node: Mapping[str, Any], logs: Mapping[str, str]) -> dict[str, Any]:
    converted = {**node, "durationInMillis": node.get("durationInMillis") or 0}
    if "steps" in node:
        converted["steps"] = [_node(step, logs) for step in node.get("steps") or []]
    log = logs.get(str(node.get("id")))
    if log is not None:
        converted["log"] = log
    return converted


def plugin_payload(payload: Mapping[str, Any], logs: Mapping[str, str]) -> dict[str, Any]:
    """The webhook payload under the plugin's names. ``logs``: node id (``""`` for the build)
    -> the name of its log in the zip."""
    converted = {name: payload[key] for name, key in _RENAMED if key in payload}
    run = payload.get("job_run") or {}
    job_run: dict[str, Any] = {
        "id": str(payload["build_number"]),
        "result": payload["result"],
        "state": "FINISHED",
        "startTime": iso_millis(int(payload["start_time"])),
        "durationInMillis": payload.get("duration") or 0,
        "stages": [_node(stage, logs) for stage in run.get("stages") or []],
    }
    if "" in logs:
        job_run["log"] = logs[""]
    converted["job_run"] = job_run
    return converted


def json_part(payload: Mapping[str, Any], logs: Mapping[str, str]) -> bytes:
    """The ``json`` part: the plugin payload encoded once more, as a string."""
    inner = json.dumps(plugin_payload(payload, logs), ensure_ascii=False, separators=(",", ":"))
    return json.dumps({"request_type": REQUEST_TYPE, "payload": inner}, ensure_ascii=False).encode()


# -- the zip -------------------------------------------------------------------------------------


def _zip(entries: Sequence[tuple[str, bytes]]) -> bytes:
    """Deflated, file entries only, written to a seekable buffer (so no data descriptors), with
    a fixed date: the same entries make the same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


def pack(logs: Mapping[str, str], junit: Sequence[tuple[str, bytes]]) -> bytes | None:
    """The ``file`` part: each log at the root under its name, and the JUnit files in a nested
    ``levelops_junit_reports.zip``; None when there is nothing to send."""
    entries = [(name, text.encode()) for name, text in logs.items()]
    if junit:
        entries.append((JUNIT_ZIP, _zip(junit)))
    return _zip(entries) if entries else None


# -- tests ---------------------------------------------------------------------------------------


@dataclass
class TestCounts:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    duplicates: int = 0
    failing: list[str] = field(default_factory=list)
    """The first 20 failing tests, ``classname.name``."""
    suites_dropped: list[str] = field(default_factory=list)
    """Suites beyond the size cap, by name: not sent."""


def _seconds(value: Any) -> str:
    try:
        return f"{max(float(value), 0.0):.3f}"
    except (TypeError, ValueError):
        return "0.000"


def junit_files(
    report: Mapping[str, Any], job_name: str, limit: int = MAX_TESTS_BYTES
) -> tuple[list[tuple[str, bytes]], TestCounts]:
    """Jenkins' ``testReport`` as JUnit XML files (one ``<testsuite>`` each) and what they hold.
    A suite without a name is named after the job; a test repeated in the build is sent once."""
    counts = TestCounts()
    files: list[tuple[str, bytes]] = []
    seen: set[str] = set()
    size = 0
    for index, suite in enumerate(report.get("suites") or []):
        if not isinstance(suite, Mapping):
            continue
        name = str(suite.get("name") or job_name)
        root = ElementTree.Element("testsuite", name=name, time=_seconds(suite.get("duration")))
        suite_counts = TestCounts()
        for case in suite.get("cases") or []:
            if not isinstance(case, Mapping):
                continue
            class_name = str(case.get("className") or "")
            case_name = str(case.get("name") or "")
            key = f"{class_name}.{case_name}"
            if key in seen:
                suite_counts.duplicates += 1
                continue
            seen.add(key)
            element = ElementTree.SubElement(
                root,
                "testcase",
                classname=class_name,
                name=case_name,
                time=_seconds(case.get("duration")),
            )
            status = str(case.get("status") or "")
            if status in ("FAILED", "REGRESSION"):
                failure = ElementTree.SubElement(
                    element,
                    "failure",
                    message=str(case.get("errorDetails") or "")[:MAX_TEST_TEXT],
                )
                failure.text = str(case.get("errorStackTrace") or "")[:MAX_TEST_TEXT]
                suite_counts.failed += 1
                suite_counts.failing.append(key)
            elif status == "SKIPPED" or case.get("skipped") is True:
                ElementTree.SubElement(element, "skipped")
                suite_counts.skipped += 1
            else:
                suite_counts.passed += 1
        data = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
        if size + len(data) > limit:
            counts.suites_dropped.append(name)
            continue
        size += len(data)
        files.append((f"suite-{index + 1}.xml", data))
        counts.passed += suite_counts.passed
        counts.failed += suite_counts.failed
        counts.skipped += suite_counts.skipped
        counts.duplicates += suite_counts.duplicates
        counts.failing += suite_counts.failing
    counts.failing = counts.failing[:20]
    return files, counts


def zip_entries(data: bytes) -> list[tuple[str, int]]:
    """The zip's entries and their sizes (uncompressed), as ``ledger show`` and ``preview``
    list them."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [(info.filename, info.file_size) for info in archive.infolist()]


def zip_logs(data: bytes) -> dict[str, str]:
    """The logs in a stored zip, by name (``ledger show --logs``)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {
            info.filename: archive.read(info).decode("utf-8", errors="replace")
            for info in archive.infolist()
            if info.filename != JUNIT_ZIP
        }
