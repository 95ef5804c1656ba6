"""What one finished build needs beyond its builds-page entry, fetched and mapped: its user (the
upstream cause walk), its Pipeline stages and steps (wfapi), and the artifacts its manifests list.
One instance per cycle: it caches upstream builds and says each warning once per cycle."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence

from harvester.collect.upstream import UpstreamCache
from harvester.jenkins.client import JenkinsClient
from harvester.jenkins.discovery import DiscoveredJob
from harvester.jenkins.models import Build, PipelineRun
from harvester.sei.artifacts import manifest_entries, manifests_of
from harvester.sei.identity import with_plugin_identity
from harvester.sei.jobref import JobRef
from harvester.sei.mapping import (
    CauseWalk,
    MappingRules,
    is_upstream_cause,
    map_build,
    truncated_stages,
)
from harvester.sei.payload import ArtifactRef, Payload

log = logging.getLogger("harvester.collect")

CollectEvent = Callable[[str], None]
"""Told ``truncated`` for a stage wfapi may have cut, ``recreated`` for a re-created job."""


class BuildDetails:
    def __init__(
        self, jenkins: JenkinsClient, rules: MappingRules, events: CollectEvent | None = None
    ) -> None:
        self.jenkins = jenkins
        self.rules = rules
        self.events = events
        self.upstream = UpstreamCache(jenkins)
        self.wfapi_missing: set[str] = set()
        self._truncated_said = False
        self._lock = threading.Lock()
        # Every job discovery found -> the classes of its containers (the plugin's identities).
        self.containers: dict[str, tuple[str | None, ...]] = {}

    def know(self, jobs: Sequence[DiscoveredJob]) -> None:
        """This cycle's discovery: where each job is, for the plugin's identities."""
        self.containers = {job.full_name: job.containers for job in jobs}

    def job_ref(self, job: DiscoveredJob) -> JobRef:
        return JobRef(job.full_name, job.multibranch_project, job.is_pipeline)

    def needs_requests(self, job: DiscoveredJob, build: Build) -> bool:
        """Whether :meth:`payload` would ask Jenkins anything (wfapi, an upstream build, a
        manifest), which a stopping harvester must not start."""
        return (
            job.is_pipeline
            or bool(manifests_of(build))
            or any(cause.upstreamProject is not None for cause in build.causes)
        )

    def payload(self, job: DiscoveredJob, build: Build) -> Payload:
        """The payload of one finished build; raises a HarvesterError when a detail cannot be
        loaded (the build is then held back and re-checked)."""
        ref = self.job_ref(job)
        run = self.pipeline_run(job, build) if ref.is_pipeline else None
        payload = map_build(
            ref,
            build,
            rules=self.rules,
            user_id=self.user_id(build),
            pipeline_run=run,
            manifest_artifacts=self.manifest_artifacts(job, build),
        )
        if self.rules.job_identity == "plugin":
            upstream = [c.upstreamProject for c in build.causes if is_upstream_cause(c)]
            payload = with_plugin_identity(
                payload,
                job.full_name,
                [name for name in upstream if name is not None],
                lambda name: self.containers.get(
                    name, job.containers if name == job.full_name else ()
                ),
            )
        return payload

    def pipeline_run(self, job: DiscoveredJob, build: Build) -> PipelineRun | None:
        run = self.jenkins.pipeline_run(job.full_name, build.number)
        if run is None:
            self.note_wfapi_missing(job.full_name)
            return None
        cut = truncated_stages(run)
        if cut:
            self.note_truncated(job.full_name, build.number, cut)
        return run

    def manifest_artifacts(self, job: DiscoveredJob, build: Build) -> list[ArtifactRef]:
        """The entries of the artifact manifests the build archived (one request each; only
        for builds whose artifact list names one)."""
        documents = []
        for name in manifests_of(build):
            content = self.jenkins.artifact(job.full_name, build.number, name)
            if content is None:
                continue  # 404: absent after all
            try:
                documents.append((name, json.loads(content)))
            except ValueError:
                log.warning(
                    "%s #%d: %s is not valid JSON; the build is sent without its entries",
                    job.full_name,
                    build.number,
                    name,
                )
        found = manifest_entries(documents)
        for problem in found.problems:
            log.warning("%s #%d: %s; entry skipped", job.full_name, build.number, problem)
        return found.artifacts

    def user_id(self, build: Build) -> str:
        walk = CauseWalk()
        walk.feed(build.causes)
        while walk.next_upstream is not None:
            project, number = walk.next_upstream
            upstream = self.upstream.causes(project, number)
            if upstream is None:
                break  # the upstream build is gone: stop where the trail ends
            walk.feed(upstream.causes)
        return walk.user_id

    def note_wfapi_missing(self, job: str) -> None:
        # Logged once per cycle (not per build): on a controller without the plugin it is every job.
        with self._lock:
            first = not self.wfapi_missing
            self.wfapi_missing.add(job)
        if first:
            log.warning(
                "wfapi answered 404 for %s: builds are sent without stages (is the Pipeline "
                "Stage View plugin installed?); not repeated for other jobs this cycle",
                job,
            )

    def note_truncated(self, job: str, number: int, stages: list[str]) -> None:
        """wfapi lists at most 100 steps per stage and says nothing when it cuts: counted each
        time, logged once per cycle, so that a user can raise the controller's limit."""
        if self.events is not None:
            for _ in stages:
                self.events("truncated")
        with self._lock:
            first, self._truncated_said = not self._truncated_said, True
        if first:
            log.warning(
                "%s #%d: stage %s has exactly 100 steps, wfapi's limit: it may have been cut. "
                "Raise the controller's StageNodeExt.maxChildNodes (a system property of the "
                "Pipeline Stage View plugin) to send them all; not repeated this cycle",
                job,
                number,
                stages[0],
            )
