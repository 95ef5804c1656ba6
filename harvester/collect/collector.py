"""The collecting half of a cycle: Jenkins → payloads → ``pending`` rows in the ledger.

The collector does the asking; what to ask for and where each job's cursor goes afterwards is
decided by the pure :mod:`harvester.collect.cursor`.

Requests per cycle: 1 discovery + 1 per job with newly finished builds (more only past 100 builds) +
1 wfapi per Pipeline build collected + 1 per distinct upstream build walked for ``user_id``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from harvester.collect.cursor import JobScan, Window, first_page_size, is_last_page, window_for
from harvester.collect.upstream import UpstreamCache
from harvester.errors import (
    HarvesterError,
    JenkinsMalformedResponse,
    JenkinsUnreachable,
    UsageError,
)
from harvester.jenkins.client import JenkinsClient
from harvester.jenkins.discovery import DiscoveredJob
from harvester.jenkins.models import BUILDS_PAGE, Build, PipelineRun
from harvester.ledger import Ledger, NewBuild
from harvester.sei.mapping import CauseWalk, JobRef, MappingRules, map_build
from harvester.sei.payload import Payload
from harvester.util import names
from harvester.util.timeparse import from_epoch_ms, to_epoch_ms

log = logging.getLogger(__name__)


@dataclass
class CollectReport:
    jobs_seen: int = 0
    jobs_scanned: int = 0
    builds_collected: int = 0
    builds_held: int = 0
    job_errors: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, *, collected: int = 0, held: int = 0, scanned: int = 0) -> None:
        with self._lock:
            self.builds_collected += collected
            self.builds_held += held
            self.jobs_scanned += scanned

    def error(self, job: str, message: str) -> None:
        with self._lock:
            self.job_errors[job] = message


class Collector:
    """Turns Jenkins builds into ledger rows. One instance per cycle (it caches upstream builds)."""

    def __init__(
        self,
        jenkins: JenkinsClient,
        ledger: Ledger | None,
        rules: MappingRules,
        *,
        include: Sequence[str] = ("**",),
        exclude: Sequence[str] = (),
        clock: Callable[[], datetime],
        workers: int = 4,
        stop: threading.Event | None = None,
    ) -> None:
        self.jenkins = jenkins
        self.ledger = ledger
        self.rules = rules
        self.include = tuple(include)
        self.exclude = tuple(exclude)
        self.clock = clock
        self.workers = max(workers, 1)
        self.stop = stop or threading.Event()
        self.upstream = UpstreamCache(jenkins)
        self.wfapi_missing: set[str] = set()
        self._wfapi_lock = threading.Lock()

    # -- discovery -------------------------------------------------------------------------------

    def discover(self, job_globs: Sequence[str] = ()) -> list[DiscoveredJob]:
        """Selected jobs; raises JenkinsUnreachable when Jenkins cannot be asked at all."""
        try:
            jobs = self.jenkins.discover()
        except JenkinsUnreachable:
            raise
        except HarvesterError as exc:
            raise JenkinsUnreachable(
                f"cannot list Jenkins' jobs: {exc}",
                hint="check jenkins.url and that Jenkins is up; nothing was collected",
            ) from None
        return [
            job
            for job in jobs
            if names.selected(job.full_name, self.include, self.exclude)
            and (not job_globs or names.matches_any(job_globs, job.full_name))
        ]

    # -- a cycle ---------------------------------------------------------------------------------

    def collect(self, since: datetime) -> CollectReport:
        """Collect every newly finished build of every selected job into the ledger."""
        assert self.ledger is not None
        report = CollectReport()
        jobs = self.discover()
        report.jobs_seen = len(jobs)
        cursors = self.ledger.cursors()
        since_ms = to_epoch_ms(since)
        windows: dict[str, Window] = {}
        for job in jobs:
            window = window_for(cursors.get(job.full_name), job.last_completed_build, since_ms)
            if window is not None:
                windows[job.full_name] = window
        todo = [job for job in jobs if job.full_name in windows]
        self.for_each_job(
            todo, lambda job: self._collect_job(job, windows[job.full_name], report), report
        )
        return report

    def for_each_job(
        self,
        jobs: Iterable[DiscoveredJob],
        work: Callable[[DiscoveredJob], None],
        report: CollectReport,
    ) -> None:
        """Run ``work`` for each job, ``workers`` at a time. A job's failure is recorded in the
        report and the others go on; only losing Jenkins altogether stops them all."""

        def guarded(job: DiscoveredJob) -> None:
            if self.stop.is_set():
                return
            try:
                work(job)
            except JenkinsUnreachable:
                raise
            except HarvesterError as exc:
                log.warning("job %s not collected this time: %s", job.full_name, exc)
                report.error(job.full_name, str(exc))
            except Exception as exc:  # one job's failure never stops the others (CONTRACT §6)
                log.exception("job %s not collected: unexpected error", job.full_name)
                report.error(job.full_name, f"unexpected error: {exc!r}")

        with ThreadPoolExecutor(self.workers, thread_name_prefix="collect") as pool:
            for future in [pool.submit(guarded, job) for job in jobs]:
                future.result()

    def _collect_job(self, job: DiscoveredJob, window: Window, report: CollectReport) -> None:
        assert self.ledger is not None
        scan = JobScan(window, known=self.ledger.numbers_above(job.full_name, window.above))
        collected = held = 0
        for page in self.pages(job, window):
            batch: list[NewBuild] = []
            for raw in page:
                if not scan.wants(raw.get("number")):
                    continue
                build = self.parse_build(job, raw)
                if scan.before_since(build.timestamp):
                    continue
                if not build.finished:
                    held += 1
                    scan.hold(build.number)
                    continue
                try:
                    payload = self.payload(job, build)
                except HarvesterError as exc:
                    log.warning("%s #%d held back: %s", job.full_name, build.number, exc)
                    held += 1
                    scan.hold(build.number)
                    continue
                batch.append(self.new_build(job, build, payload))
            if batch:
                collected += self.ledger.add_pending(batch, now=self.clock())
        # Stopped part-way (SIGTERM): older pages were not read, so the cursor stays; what was
        # stored is skipped next time through `known`.
        cursor = scan.new_cursor(
            job.last_build, job.last_completed_build, stopped=self.stop.is_set()
        )
        if cursor is not None:
            self.ledger.add_pending([], now=self.clock(), cursor=(job.full_name, cursor))
        report.add(collected=collected, held=held, scanned=1)
        if collected:
            log.info("%s: %d build(s) collected", job.full_name, collected)

    def pages(self, job: DiscoveredJob, window: Window) -> Iterator[list[dict[str, Any]]]:
        """Pages of builds newest first, stopping below the window: ``builds{0,N}`` (N only as
        many as can be new), then ``allBuilds{M,M+100}`` past Jenkins' cap of 100."""
        start = 0
        size = first_page_size(window, job.last_build)
        while not self.stop.is_set():
            page = self.jenkins.builds_page(job.full_name, start, start + size)
            yield page
            if is_last_page(page, size, window):
                return
            start += size
            size = BUILDS_PAGE

    # -- one build -------------------------------------------------------------------------------

    def parse_build(self, job: DiscoveredJob, raw: dict[str, Any]) -> Build:
        """One build of a builds page; a build that does not validate is malformed."""
        try:
            return Build.model_validate(raw)
        except ValidationError as exc:
            raise JenkinsMalformedResponse(
                f"build JSON does not validate ({exc.error_count()} errors)",
                job=job.full_name,
                build=raw.get("number") if isinstance(raw.get("number"), int) else None,
            ) from None

    def job_ref(self, job: DiscoveredJob) -> JobRef:
        return JobRef(job.full_name, job.multibranch_project, job.is_pipeline)

    def payload(self, job: DiscoveredJob, build: Build) -> Payload:
        """Everything one finished build needs beyond the builds page: its user (cause walk) and,
        for a Pipeline, its stages and steps (wfapi)."""
        ref = self.job_ref(job)
        run = None
        if ref.is_pipeline:
            data = self.jenkins.pipeline_run(job.full_name, build.number)
            if data is None:
                self.note_wfapi_missing(job.full_name)
            else:
                try:
                    run = PipelineRun.model_validate(data)
                except ValidationError:
                    raise JenkinsMalformedResponse(
                        "wfapi answer does not validate", job=job.full_name, build=build.number
                    ) from None
        user_id = self.user_id(build)
        return map_build(ref, build, rules=self.rules, user_id=user_id, pipeline_run=run)

    def note_wfapi_missing(self, job: str) -> None:
        # Logged once per cycle (not per build): on a controller without the plugin it is every job.
        with self._wfapi_lock:
            first = not self.wfapi_missing
            self.wfapi_missing.add(job)
        if first:
            log.warning(
                "wfapi answered 404 for %s: builds are sent without stages (is the Pipeline "
                "Stage View plugin installed?); not repeated for other jobs this cycle",
                job,
            )

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

    def new_build(self, job: DiscoveredJob, build: Build, payload: Payload) -> NewBuild:
        return NewBuild(
            job=job.full_name,
            number=build.number,
            result=build.result,
            payload=payload.to_json(),
            started_at=from_epoch_ms(build.timestamp),
        )

    # -- preview ---------------------------------------------------------------------------------

    def find_job(self, name: str) -> DiscoveredJob:
        jobs = self.jenkins.discover()
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

    def preview(self, name: str, number: int) -> Payload:
        job = self.find_job(name)
        build = Build.model_validate(self.jenkins.build(job.full_name, number))
        if not build.finished:
            raise UsageError(
                f"{job.full_name} #{number} has not finished",
                hint="only finished builds are sent; preview it when it has",
            )
        return self.payload(job, build)
