"""What the plugin channel sends beside a build's payload, read from Jenkins at collection: the
logs of its failed steps (the last 150 KiB of each) and its JUnit results, packed into the zip
that is stored with the payload and sent, the same bytes, at every attempt."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from harvester.jenkins.client import JenkinsClient
from harvester.jenkins.discovery import DiscoveredJob
from harvester.jenkins.models import Build
from harvester.sei.payload import Payload
from harvester.sei.plugin import (
    LOG_TAIL_BYTES,
    MAX_LOG_BYTES,
    failed_nodes,
    junit_files,
    pack,
    strip_notes,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Attachments:
    data: bytes | None
    """The zip (None: nothing to send beside the payload)."""
    summary: str
    """What it holds, as JSON: log names with their nodes and sizes, test counts (``ledger show``
    and the status page list it; the deliverer names each node's log from it)."""


def has_test_report(build: Build) -> bool:
    """Whether the build's actions name a test report (no blind request for one)."""
    for action in build.actions:
        if not isinstance(action, dict):
            continue
        if action.get("urlName") == "testReport" or str(action.get("_class", "")).endswith(
            ("TestResultAction", "SurefireAggregatedReport")
        ):
            return True
    return False


class AttachmentReader:
    def __init__(
        self,
        jenkins: JenkinsClient,
        *,
        logs: bool,
        tests: bool,
        new_name: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.jenkins = jenkins
        self.logs = logs
        self.tests = tests
        self.new_name = new_name

    def read(self, job: DiscoveredJob, build: Build, payload: Payload) -> Attachments:
        """Raises a HarvesterError when Jenkins fails to answer (the build is held back and
        re-checked, never sent without what it should carry); a log or a report Jenkins does
        not have (404) is left out and counted."""
        summary: dict[str, Any] = {"logs": [], "logs_missing": 0, "logs_dropped": 0}
        logs: dict[str, str] = {}
        if self.logs:
            total = 0
            nodes = failed_nodes(payload, build.result or "")
            for index, node in enumerate(nodes):
                text = self.jenkins.log_tail(job.full_name, build.number, node.node, LOG_TAIL_BYTES)
                if text is None:
                    summary["logs_missing"] += 1
                    continue
                text = strip_notes(text)
                size = len(text.encode())
                if total + size > MAX_LOG_BYTES:  # this one and the later-failed ones
                    summary["logs_dropped"] = len(nodes) - index
                    break
                name = self.new_name()
                logs[name] = text
                total += size
                summary["logs"].append(
                    {"name": name, "node": node.node or "", "step": node.name, "bytes": size}
                )
        junit: list[tuple[str, bytes]] = []
        if self.tests and has_test_report(build):
            report = self.jenkins.test_report(job.full_name, build.number)
            if report is not None:
                junit, counts = junit_files(
                    report, str(payload.get("job_full_name", job.full_name))
                )
                summary["tests"] = {**asdict(counts), "files": len(junit)}
                if counts.duplicates:
                    log.info(
                        "%s #%d: %d repeated test(s) sent once",
                        job.full_name,
                        build.number,
                        counts.duplicates,
                    )
        return Attachments(pack(logs, junit), json.dumps(summary, separators=(",", ":")))
