"""The collecting half of a cycle: Jenkins → payloads → ``pending`` rows in the ledger.

Per job, a cursor says "every build numbered at or below me is settled". A cycle asks only for builds
above it, writes each finished one as ``pending`` (payload included), and then moves the cursor to just
below the oldest build it could not settle: one still running, or one whose details failed to load.
So a build is never skipped (also when n+1 finishes before n) and never collected twice (the ledger's
unique key and the ``numbers_above`` check).

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

from harvester import names
from harvester.errors import (
    HarvesterError,
    JenkinsMalformedResponse,
    JenkinsUnreachable,
    UsageError,
)
from harvester.jenkins import BUILDS_PAGE, DiscoveredJob, JenkinsClient
from harvester.jenkins_models import Build, CausesOnly, PipelineRun
from harvester.ledger import Ledger, NewBuild
from harvester.mapping import CauseWalk, JobRef, MappingRules, map_build
from harvester.payload import Payload
from harvester.timeparse import from_epoch_ms, to_epoch_ms

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


@dataclass(frozen=True, slots=True)
class Window:
    """Which builds a scan takes: numbered above ``above`` and, if set, started at ``since_ms`` or
    later."""

    above: int = 0
    since_ms: int | None = None


class UpstreamCache:
    """Upstream builds' causes, fetched once per cycle (CONTRACT §4a)."""

    def __init__(self, jenkins: JenkinsClient) -> None:
        self._jenkins = jenkins
        self._lock = threading.Lock()
        self._known: dict[tuple[str, int], CausesOnly | None] = {}
        self._inflight: dict[tuple[str, int], threading.Event] = {}

    def causes(self, project: str, number: int) -> CausesOnly | None:
        key = (project, number)
        while True:
            with self._lock:
                if key in self._known:
                    return self._known[key]
                event = self._inflight.get(key)
                if event is None:
                    event = self._inflight[key] = threading.Event()
                    break
            event.wait()  # another worker is fetching the same upstream build
        try:
            data = self._jenkins.build_causes(project, number)
            try:
                causes = None if data is None else CausesOnly.model_validate(data)
            except ValidationError:
                raise JenkinsMalformedResponse(
                    "upstream build JSON does not validate", job=project, build=number
                ) from None
            with self._lock:
                self._known[key] = causes  # validated once, however many builds it started
        finally:
            with self._lock:
                self._inflight.pop(key, None)
            event.set()
        return causes


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
            cursor = cursors.get(job.full_name)
            # Nothing finished above the cursor: no request for this job at all.
            if job.last_completed_build is None:
                continue
            if cursor is not None and job.last_completed_build <= cursor:
                continue
            windows[job.full_name] = Window(
                above=cursor or 0, since_ms=None if cursor is not None else since_ms
            )
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
        known = self.ledger.numbers_above(job.full_name, window.above)
        limit = (job.last_build or 0) - window.above
        oldest_unsettled: int | None = None
        newest_seen = window.above
        collected = held = 0
        for page in self.pages(job, window, limit):
            batch: list[NewBuild] = []
            for raw in page:
                number = raw.get("number")
                if not isinstance(number, int) or number <= window.above:
                    continue
                newest_seen = max(newest_seen, number)
                if number in known:
                    continue
                build = self.parse_build(job, raw)
                if window.since_ms is not None and build.timestamp < window.since_ms:
                    continue  # before harvest.since on first sight: settled, deliberately not sent
                if not build.finished:
                    held += 1
                    oldest_unsettled = min(oldest_unsettled or number, number)
                    continue
                try:
                    payload = self.payload(job, build)
                except HarvesterError as exc:
                    log.warning("%s #%d held back: %s", job.full_name, number, exc)
                    held += 1
                    oldest_unsettled = min(oldest_unsettled or number, number)
                    continue
                batch.append(self.new_build(job, build, payload))
            if batch:
                collected += self.ledger.add_pending(batch, now=self.clock())
        if self.stop.is_set():
            # Stopped part-way (SIGTERM): older pages were not read, so the cursor must stay;
            # what was stored is skipped next time through `known`.
            report.add(collected=collected, held=held, scanned=1)
            return
        settled = newest_seen if oldest_unsettled is None else oldest_unsettled - 1
        if job.last_build is not None and oldest_unsettled is None:
            # Builds above what we saw but at or below lastBuild were deleted or never existed.
            settled = max(settled, min(job.last_build, job.last_completed_build or 0))
        if settled > window.above:
            self.ledger.add_pending([], now=self.clock(), cursor=(job.full_name, settled))
        report.add(collected=collected, held=held, scanned=1)
        if collected:
            log.info("%s: %d build(s) collected", job.full_name, collected)

    def pages(
        self, job: DiscoveredJob, window: Window, limit: int
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of builds newest first, stopping below the window: ``builds{0,N}`` (N only as
        many as can be new), then ``allBuilds{M,M+100}`` past Jenkins' cap of 100."""
        start = 0
        size = max(1, min(BUILDS_PAGE, limit)) if limit > 0 else BUILDS_PAGE
        while not self.stop.is_set():
            page = self.jenkins.builds_page(job.full_name, start, start + size)
            yield page
            if len(page) < size:
                return  # the job has no more builds
            last = page[-1]
            number = last.get("number")
            timestamp = last.get("timestamp")
            if isinstance(number, int) and number <= window.above + 1:
                return
            if (
                window.since_ms is not None
                and isinstance(timestamp, int)
                and timestamp < window.since_ms
            ):
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
