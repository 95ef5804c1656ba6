"""``catch-up``: a one-shot backfill of the builds started in a window, including those older than a
job's cursor. Collection and delivery run side by side (the ledger's pending rows are the bounded
queue between them), so the slower side sets the pace; memory stays flat because builds are streamed
page by page and written as they come.

Resumable: an interrupted catch-up re-run skips what the ledger already holds. Cursors are never
touched, so they never move backwards (or forwards past builds this window did not look at).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from harvester.collect.collector import Collector
from harvester.collect.cursor import JobScan, Window
from harvester.collect.report import CollectReport, Settled
from harvester.delivery.deliverer import Deliverer, DeliveryReport
from harvester.errors import ExitCode
from harvester.jenkins.discovery import DiscoveredJob
from harvester.sei.payload import Payload
from harvester.util.timeparse import to_epoch_ms

log = logging.getLogger(__name__)

PayloadSink = Callable[[Payload], None]


@dataclass
class CatchUpResult:
    jobs: int
    collect: CollectReport
    delivery: DeliveryReport

    @property
    def exit_code(self) -> int:
        if self.delivery.stopping_error is not None:
            return ExitCode.WEBHOOK_CREDENTIALS
        if (
            self.collect.job_errors
            or self.delivery.retrying
            or self.delivery.dead
            or self.delivery.receiver_down
        ):
            return ExitCode.WORK_LEFT
        return ExitCode.OK


class Progress:
    """Where catch-up reports how far it got (a rich bar on a terminal, log lines elsewhere)."""

    def start(self, jobs: int) -> None: ...
    def update(self, collect: CollectReport, delivery: DeliveryReport) -> None: ...
    def finish(self, collect: CollectReport, delivery: DeliveryReport) -> None: ...


def progress_counts(collect: CollectReport, delivery: DeliveryReport, elapsed: float) -> str:
    """What both progress displays show beside the jobs scanned."""
    failed = delivery.dead + len(collect.job_errors)
    rate = delivery.delivered / max(elapsed, 1e-6)
    return (
        f"{collect.builds_collected} collected, {delivery.delivered} delivered, "
        f"{failed} failed, {rate:.1f} builds/s"
    )


class LogProgress(Progress):
    def __init__(self, every_seconds: float = 10.0) -> None:
        self.every = every_seconds
        self.jobs = 0
        self.started = time.monotonic()
        self.last = 0.0

    def start(self, jobs: int) -> None:
        self.jobs = jobs
        self.started = time.monotonic()
        log.info("catch-up: %d job(s) to scan", jobs)

    def _line(self, collect: CollectReport, delivery: DeliveryReport) -> str:
        counts = progress_counts(collect, delivery, time.monotonic() - self.started)
        return f"catch-up: {collect.jobs_scanned}/{self.jobs} jobs scanned, {counts}"

    def update(self, collect: CollectReport, delivery: DeliveryReport) -> None:
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            log.info("%s", self._line(collect, delivery))

    def finish(self, collect: CollectReport, delivery: DeliveryReport) -> None:
        log.info("%s (done)", self._line(collect, delivery))


def scan_job(
    collector: Collector,
    job: DiscoveredJob,
    since_ms: int,
    until_ms: int,
    report: CollectReport,
    sink: PayloadSink | None,
    *,
    leave_cursor: bool = False,
) -> None:
    """Collect ``job``'s finished builds started in [since, until) that the ledger lacks; hold
    those still running (the daemon re-checks them). With ``leave_cursor`` (the window reaches the
    present), a job scanned to the end gets a cursor, so the next cycle does not list it again."""
    ledger = collector.ledger
    window = Window(above=0, since_ms=since_ms)
    scan = JobScan(window, known=ledger.known(job.full_name, 0) if ledger is not None else {})
    collected = skipped = 0
    for page in collector.pages(job, window):
        settled = Settled()
        for raw in page:
            number, timestamp = raw.get("number"), raw.get("timestamp")
            seen = scan.see(number, timestamp)
            if seen in ("outside", "known"):
                continue
            assert isinstance(number, int)
            if isinstance(timestamp, int) and timestamp >= until_ms:
                scan.leave(number)  # after the window: the daemon's, not ours
                continue
            if isinstance(timestamp, int) and timestamp < since_ms:
                continue
            build = collector.read_entry(job, raw, seen, settled)
            if build is None:
                continue
            if sink is not None:
                if build.finished and not collector.stop.is_set():
                    sink(collector.payload(job, build))
                    collected += 1  # a dry run's: would be collected and sent
                continue
            collector.settle(job, build, settled)
        if ledger is not None and sink is None:
            collected += collector.write(job, settled)
            skipped += sum(1 for row in settled.rows if row.skipped is not None)
            for number in settled.hold:
                scan.hold(number)
    if leave_cursor and ledger is not None and sink is None:
        cursor = scan.new_cursor(
            job.last_build, job.last_completed_build, stopped=collector.stop.is_set()
        )
        if cursor is not None:  # never backwards (Ledger.add_pending keeps the greater)
            ledger.add_pending([], now=collector.clock(), cursor=(job.full_name, cursor))
    report.add(collected=collected, held=len(scan.held), scanned=1, skipped=skipped)


def catch_up(
    collector: Collector,
    deliverer: Deliverer | None,
    *,
    since: datetime,
    until: datetime,
    job_globs: list[str],
    progress: Progress,
    sink: PayloadSink | None = None,
    leave_cursors: bool = False,
) -> CatchUpResult:
    """Scan every selected job's window while delivering what is collected. With ``sink`` (dry
    run), payloads go to the sink and nothing is written or sent."""
    jobs = [job for job in collector.discover(job_globs) if job.last_build is not None]
    report = CollectReport(jobs_seen=len(jobs))
    delivery = deliverer.report if deliverer is not None else DeliveryReport()
    progress.start(len(jobs))
    collecting_done = threading.Event()
    delivery_failure: list[BaseException] = []
    delivery_thread = None
    if deliverer is not None and sink is None:

        def deliver() -> None:
            try:
                deliverer.deliver_due(until=collecting_done)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread below
                delivery_failure.append(exc)

        delivery_thread = threading.Thread(target=deliver, name="catch-up-delivery", daemon=True)
        delivery_thread.start()
    since_ms, until_ms = to_epoch_ms(since), to_epoch_ms(until)

    def one(job: DiscoveredJob) -> None:
        scan_job(collector, job, since_ms, until_ms, report, sink, leave_cursor=leave_cursors)
        progress.update(report, delivery)

    try:
        collector.for_each_job(jobs, one, report)
    finally:
        collecting_done.set()
        while delivery_thread is not None and delivery_thread.is_alive():
            delivery_thread.join(0.5)
            progress.update(report, delivery)
    if delivery_failure:
        raise delivery_failure[0]
    progress.finish(report, delivery)
    return CatchUpResult(len(jobs), report, delivery)
