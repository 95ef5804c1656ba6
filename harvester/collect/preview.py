"""``preview JOB BUILD``: one build's payload, fetched and mapped as a cycle would, with nothing
written or sent."""

from __future__ import annotations

from harvester.collect.attachments import Attachments
from harvester.collect.collector import Collector
from harvester.errors import UsageError
from harvester.jenkins.discovery import DiscoveredJob
from harvester.sei.payload import Payload
from harvester.util import names


def find_job(collector: Collector, name: str) -> DiscoveredJob:
    jobs = collector.jenkins.discover()
    collector.details.know(jobs)
    exact = [j for j in jobs if j.full_name == name]
    if exact:
        return exact[0]
    by_decoded = [j for j in jobs if names.decoded(j.full_name) == name]
    if len(by_decoded) == 1:
        return by_decoded[0]
    if by_decoded:
        raise UsageError(
            f"JOB {name!r} is ambiguous",
            hint="name it as Jenkins prints it: " + ", ".join(j.full_name for j in by_decoded),
        )
    raise UsageError(
        f"Jenkins has no job {name!r}",
        hint="use the full name as Jenkins prints it, e.g. folder/sub/job",
    )


def preview(collector: Collector, name: str, number: int) -> tuple[Payload, Attachments | None]:
    """The payload of one build, and on the plugin channel what would go beside it, as they
    would be sent; nothing is written or sent."""
    job = find_job(collector, name)
    build = collector.parse_build(job, collector.jenkins.build(job.full_name, number))
    if build is None:
        raise UsageError(
            f"{job.full_name} #{number}: Jenkins' build JSON does not validate",
            hint="such a build is recorded skipped and never sent",
        )
    if not build.finished:
        raise UsageError(
            f"{job.full_name} #{number} has not finished",
            hint="only finished builds are sent; preview it when it has",
        )
    payload = collector.payload(job, build)
    if collector.attachments is None:
        return payload, None
    return payload, collector.attachments.read(job, build, payload)
