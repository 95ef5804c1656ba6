"""The collecting half of a cycle: Jenkins → payloads → ``pending`` rows in the ledger.

The collector does the asking; what to ask for and where each job's cursor goes afterwards is
decided by the pure :mod:`harvester.collect.cursor`; what one build needs beyond its builds-page
entry is fetched by :mod:`harvester.collect.details`.

Requests per cycle: 1 discovery + 1 per job with new builds (more past 100) + 1 wfapi
per Pipeline build collected + 1 per held build re-checked + 1 per distinct upstream build walked
+ 1 per artifact manifest.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from harvester.collect.attachments import AttachmentReader, Attachments
from harvester.collect.cursor import (
    JobPlan,
    JobScan,
    Seen,
    Window,
    first_page_size,
    is_last_page,
    plan_for,
)
from harvester.collect.details import BuildDetails, CollectEvent
from harvester.collect.report import CollectReport, Settled
from harvester.errors import (
    HarvesterError,
    JenkinsNotFound,
    JenkinsUnreachable,
    NotActive,
)
from harvester.jenkins.client import JenkinsClient
from harvester.jenkins.discovery import DiscoveredJob
from harvester.jenkins.models import BUILDS_PAGE, Build
from harvester.ledger import Ledger, NewBuild
from harvester.sei.jobref import JobRef
from harvester.sei.mapping import MappingRules
from harvester.sei.payload import Payload, payload_json
from harvester.util import names
from harvester.util.timeparse import from_epoch_ms, to_epoch_ms

log = logging.getLogger(__name__)

REUSED = "number reused by a re-created job: the receiver keys builds by job name and number"


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
        events: CollectEvent | None = None,
        attachments: AttachmentReader | None = None,
    ) -> None:
        self.jenkins = jenkins
        self.ledger = ledger
        self.rules = rules
        self.include = tuple(include)
        self.exclude = tuple(exclude)
        self.clock = clock
        self.workers = max(workers, 1)
        self.stop = stop or threading.Event()
        self.events = events
        self.details = BuildDetails(jenkins, rules, events)
        # The plugin channel's logs and tests (None: the webhook channel, nothing beside).
        self.attachments = attachments

    # -- discovery -------------------------------------------------------------------------------

    def discover(self, job_globs: Sequence[str] = ()) -> list[DiscoveredJob]:
        """Selected jobs; raises JenkinsUnreachable when Jenkins cannot be asked at all."""
        try:
            jobs = self.jenkins.discover()
        except (JenkinsUnreachable, NotActive):
            raise
        except HarvesterError as exc:
            raise JenkinsUnreachable(
                f"cannot list Jenkins' jobs: {exc}",
                hint="check jenkins.url and that Jenkins is up; nothing was collected",
            ) from None
        self.details.know(jobs)
        return [
            job
            for job in jobs
            if names.selected(job.full_name, self.include, self.exclude)
            and (not job_globs or names.matches_any(job_globs, job.full_name))
        ]

    # -- a cycle ---------------------------------------------------------------------------------

    def collect(self, since: datetime) -> CollectReport:
        """Collect every newly finished build of every selected job into the ledger, and
        re-check the builds held back."""
        assert self.ledger is not None
        report = CollectReport()
        # Read before Jenkins is asked: a cursor can only be below the lastBuild discovery then
        # finds, unless the job was re-created. Read after, it could be past it (a catch-up
        # beside this cycle collected newer builds meanwhile) and look like a re-created job.
        cursors = self.ledger.cursors()
        held = self.ledger.held()
        jobs = self.discover()
        report.jobs_seen = len(jobs)
        since_ms = to_epoch_ms(since)
        plans: dict[str, JobPlan] = {}
        for job in jobs:
            plan = plan_for(
                job.last_build,
                job.last_completed_build,
                cursors.get(job.full_name),
                held.get(job.full_name),
                since_ms,
            )
            if plan is not None:
                plans[job.full_name] = plan
        todo = [job for job in jobs if job.full_name in plans]
        self.for_each_job(
            todo, lambda job: self._collect_job(job, plans[job.full_name], report), report
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
            except (JenkinsUnreachable, NotActive):
                raise
            except HarvesterError as exc:
                log.warning("job %s not collected this time: %s", job.full_name, exc)
                report.error(job.full_name, str(exc))
            except Exception as exc:  # one job's failure never stops the others
                log.exception("job %s not collected: unexpected error", job.full_name)
                report.error(job.full_name, f"unexpected error: {exc!r}")

        with ThreadPoolExecutor(self.workers, thread_name_prefix="collect") as pool:
            for future in [pool.submit(guarded, job) for job in jobs]:
                future.result()

    def _collect_job(self, job: DiscoveredJob, plan: JobPlan, report: CollectReport) -> None:
        assert self.ledger is not None
        if plan.recreated:
            log.warning(
                "%s was re-created (its last build #%s is below what was collected before): "
                "collecting its builds from #1 again; numbers it reuses are recorded skipped",
                job.full_name,
                job.last_build,
            )
            report.add(recreated=1)
            if self.events is not None:
                self.events("recreated")
            self.ledger.restart_job(job.full_name)
        seen: set[int] = set()
        if plan.window is not None:
            seen, still_held = self._scan(job, plan.window, report)
            settled_by_scan = (plan.held & seen) - still_held
            if settled_by_scan:  # the scan met them again and settled them
                self.write(job, Settled(unhold=sorted(settled_by_scan)))
        for number in sorted(plan.held - seen):
            if self.stop.is_set():
                return
            self._recheck(job, number, report)

    def _scan(
        self, job: DiscoveredJob, window: Window, report: CollectReport
    ) -> tuple[set[int], set[int]]:
        """Scan the job's builds in ``window``; returns the numbers it saw and those it held."""
        assert self.ledger is not None
        scan = JobScan(window, known=self.ledger.known(job.full_name, window.above))
        collected = skipped = 0
        numbers: set[int] = set()
        for page in self.pages(job, window):
            settled = Settled()
            for raw in page:
                number, timestamp = raw.get("number"), raw.get("timestamp")
                seen = scan.see(number, timestamp)
                if seen == "outside":
                    continue
                assert isinstance(number, int)
                numbers.add(number)
                if seen == "known":
                    continue
                build = self.read_entry(job, raw, seen, settled)
                if build is None or scan.before_since(build.timestamp):
                    continue
                self.settle(job, build, settled)
            for number in settled.hold:
                scan.hold(number)
            collected += self.write(job, settled)
            skipped += sum(1 for row in settled.rows if row.skipped is not None)
        # Stopped part-way (SIGTERM): older pages were not read, so the cursor stays; what was
        # stored is skipped next time through `known`.
        cursor = scan.new_cursor(
            job.last_build, job.last_completed_build, stopped=self.stop.is_set()
        )
        log.debug(
            "%s: scanned above #%d, newest seen #%d, held %s: cursor %s",
            job.full_name,
            window.above,
            scan.newest_seen,
            sorted(scan.held) or "none",
            "stays" if cursor is None else f"-> #{cursor}",
            extra={"job": job.full_name, "cursor": cursor, "held": sorted(scan.held)},
        )
        if cursor is not None:
            self.ledger.add_pending([], now=self.clock(), cursor=(job.full_name, cursor))
        report.add(collected=collected, held=len(scan.held), scanned=1, skipped=skipped)
        if collected:
            log.info("%s: %d build(s) collected", job.full_name, collected)
        return numbers, scan.held

    def _recheck(self, job: DiscoveredJob, number: int, report: CollectReport) -> None:
        """A held build, on its own (1 request): settled now, still held, or gone."""
        settled = Settled()
        try:
            raw = self.jenkins.build(job.full_name, number)
        except JenkinsNotFound:
            log.info("%s #%d was deleted while held back; nothing to send", job.full_name, number)
            settled.unhold.append(number)
            self.write(job, settled)
            return
        except NotActive:
            raise  # not this build's problem: the whole cycle stops
        except HarvesterError as exc:
            log.warning("%s #%d held back: %s", job.full_name, number, exc)
            settled.hold[number] = str(exc)  # why, as the status page and `ledger jobs` show
            self.write(job, settled)
            report.add(held=1)
            return
        build = self.parse_build(job, raw)
        if build is None:
            settled.rows.append(
                self.skipped(job, number, raw.get("timestamp"), "build JSON does not validate")
            )
            settled.unhold.append(number)
        else:
            self.settle(job, build, settled)
            if not settled.hold:
                settled.unhold.append(number)
        collected = self.write(job, settled)
        report.add(collected=collected, held=len(settled.hold))

    def settle(self, job: DiscoveredJob, build: Build, settled: Settled) -> None:
        """A finished build becomes a row; one still running, or whose details fail to load, is
        held (re-checked on its own next cycle)."""
        if not build.finished:
            settled.hold[build.number] = "still running"
            return
        if self.stop.is_set() and self.details.needs_requests(job, build):
            return  # stopping: no new request; the cursor stays, so it is collected next time
        try:
            payload = self.payload(job, build)
            files = None if self.attachments is None else self.attachments.read(job, build, payload)
        except NotActive:
            raise  # not this build's problem: the whole cycle stops
        except HarvesterError as exc:
            log.warning("%s #%d held back: %s", job.full_name, build.number, exc)
            settled.hold[build.number] = str(exc)
            return
        settled.rows.append(self.new_build(job, build, payload, files))

    def write(self, job: DiscoveredJob, settled: Settled) -> int:
        assert self.ledger is not None
        if not (settled.rows or settled.hold or settled.unhold):
            return 0
        return self.ledger.add_pending(
            settled.rows,
            now=self.clock(),
            hold=[(job.full_name, n, why) for n, why in settled.hold.items()],
            unhold=[(job.full_name, n) for n in settled.unhold],
        )

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

    def parse_build(self, job: DiscoveredJob, raw: dict[str, Any]) -> Build | None:
        """One build of a builds page, or None when it does not validate: then it is recorded
        ``skipped`` with the reason and never blocks its job."""
        try:
            return Build.model_validate(raw)
        except ValidationError as exc:
            log.warning(
                "%s #%s: build JSON does not validate (%d errors); recorded skipped",
                job.full_name,
                raw.get("number"),
                exc.error_count(),
            )
            return None

    def read_entry(
        self, job: DiscoveredJob, raw: dict[str, Any], seen: Seen, settled: Settled
    ) -> Build | None:
        """A new page entry as a Build; None when it is recorded ``skipped`` instead: it does
        not validate, or (``seen`` ``reused``) a re-created job reused its number."""
        build = self.parse_build(job, raw)
        if build is None or seen == "reused":
            reason = REUSED if build is not None else "build JSON does not validate"
            settled.rows.append(self.skipped(job, raw["number"], raw.get("timestamp"), reason))
            return None
        return build

    def skipped(self, job: DiscoveredJob, number: int, timestamp: object, reason: str) -> NewBuild:
        started = timestamp if isinstance(timestamp, int) and timestamp > 0 else None
        return NewBuild(
            job=job.full_name,
            number=number,
            result=None,
            payload="{}",
            started_at=from_epoch_ms(started) if started is not None else self.clock(),
            skipped=reason,
        )

    def job_ref(self, job: DiscoveredJob) -> JobRef:
        return self.details.job_ref(job)

    def payload(self, job: DiscoveredJob, build: Build) -> Payload:
        return self.details.payload(job, build)

    def user_id(self, build: Build) -> str:
        return self.details.user_id(build)

    def new_build(
        self,
        job: DiscoveredJob,
        build: Build,
        payload: Payload,
        files: Attachments | None = None,
    ) -> NewBuild:
        return NewBuild(
            job=job.full_name,
            number=build.number,
            result=build.result,
            payload=payload_json(payload),
            started_at=from_epoch_ms(build.timestamp),
            files=None if files is None else files.data,
            files_summary=None if files is None else files.summary,
        )
