"""One cycle: collect, then deliver, then record how it went. Used by `run --once`, the daemon and
`demo`; `catch-up` runs both halves side by side (harvester.catchup)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from harvester.collect.collector import Collector
from harvester.collect.report import CollectReport
from harvester.daemon.metrics import Metrics
from harvester.delivery.deliverer import Deliverer, DeliveryReport
from harvester.delivery.gate import DeliveryGate
from harvester.errors import ExitCode, JenkinsUnreachable, NotActive
from harvester.jenkins.client import JenkinsClient
from harvester.ledger import Ledger
from harvester.replica import Membership
from harvester.sei.webhook import WebhookClient
from harvester.util.timeparse import resolve_when

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass
class CycleResult:
    started_at: datetime
    finished_at: datetime
    collect: CollectReport
    delivery: DeliveryReport
    jenkins_error: JenkinsUnreachable | None
    pending_left: int
    webhook_failing: bool = False
    """Every POST since the receiver's last 2xx failed (the gate's view, across cycles)."""
    not_active: bool = False
    """Stopped part-way: this replica lost its controller's lease (the cycle proves nothing)."""

    @property
    def succeeded(self) -> bool:
        """Everything reached and collected (recorded as the ledger's "last successful cycle")."""
        return self.problem is None and not self.collect.job_errors and not self.not_active

    @property
    def problem(self) -> str | None:
        """What makes /healthz 503: Jenkins out of reach, or the webhook failing
        every delivery. One job's failure alone is not one."""
        if self.jenkins_error is not None:
            return f"Jenkins unreachable: {self.jenkins_error}"
        if self.delivery.stopping_error is not None:
            return f"webhook: {self.delivery.stopping_error}"
        if self.webhook_failing or self.delivery.webhook_failing:
            return (
                "webhook: every delivery failed since the last success (is the receiver down?); "
                "rows stay pending and are retried with backoff"
            )
        return None

    @property
    def exit_code(self) -> int:
        """README "Commands" and §4a: 3 only when Jenkins cannot be reached at all; 4 when the webhook
        rejected the credentials or the URL; 1 when work is left; else 0."""
        if self.jenkins_error is not None:
            return ExitCode.JENKINS_UNREACHABLE
        if self.delivery.stopping_error is not None:
            return ExitCode.WEBHOOK_CREDENTIALS
        if self.collect.job_errors or self.pending_left or self.delivery.dead:
            return ExitCode.WORK_LEFT
        return ExitCode.OK

    def summary(self) -> str:
        took = (self.finished_at - self.started_at).total_seconds()
        parts = (
            ["Jenkins unreachable, nothing collected"]
            if self.jenkins_error is not None
            else [f"{self.collect.jobs_seen} jobs", f"{self.collect.builds_collected} collected"]
        )
        parts.append(f"{self.delivery.delivered} delivered")
        if self.collect.builds_held:
            parts.append(f"{self.collect.builds_held} held back (running, or details not loaded)")
        if self.delivery.retrying:
            parts.append(f"{self.delivery.retrying} to retry")
        if self.delivery.dead:
            parts.append(f"{self.delivery.dead} dead")
        if self.delivery.throttled:
            parts.append(f"{self.delivery.throttled} throttled")
        if self.delivery.receiver_down:
            parts.append("webhook down")
        if self.collect.job_errors:
            parts.append(f"{len(self.collect.job_errors)} job(s) failed")
        if self.not_active:
            parts.append("stopped: no longer the active replica")
        parts.append(f"{self.pending_left} pending")
        return f"cycle: {', '.join(parts)} in {took:.1f}s"


@dataclass
class Harvester:
    """The wired parts a cycle needs (built by :func:`harvester.app.build_harvester`, the one
    place that wires). ``new_collector`` and ``new_deliverer`` make one of each per cycle (the
    collector caches upstream builds for a cycle only), on the harvester's clock."""

    jenkins: JenkinsClient
    webhook: WebhookClient
    ledger: Ledger
    metrics: Metrics
    clock: Clock
    stop: threading.Event
    since: str  # harvest.since: how far back a job seen for the first time is collected
    new_collector: Callable[[Clock], Collector]
    gate: DeliveryGate
    new_deliverer: Callable[[Clock], Deliverer]
    replica: Membership | None = None
    """This process in the replica registry; a daemon collects only its share of the jobs."""

    def collector(self) -> Collector:
        return self.new_collector(self.clock)

    def deliverer(self) -> Deliverer:
        return self.new_deliverer(self.clock)

    def run_cycle(self) -> CycleResult:
        started = self.clock()
        t0 = time.perf_counter()
        requests_before = self.jenkins.total_requests
        collect = CollectReport()
        delivery = DeliveryReport()
        jenkins_error = None
        not_active = False
        try:
            try:
                collect = self.collector().collect(resolve_when(self.since, started))
            except JenkinsUnreachable as exc:
                # Nothing can be collected, but what is pending can still be delivered.
                log.error("%s", exc)
                jenkins_error = exc
            self.metrics.builds_collected.inc(collect.builds_collected)
            if self.replica is not None:
                # A replica dead for 3 intervals: its claimed rows are delivered by the others.
                released = self.ledger.release_dead_claims()
                if released:
                    log.warning(
                        "%d build(s) claimed by a replica that stopped heartbeating are due again",
                        released,
                    )
            delivery = self.deliverer().deliver_due()
        except NotActive as exc:
            # The lease was lost mid-cycle: no new request, nothing more written; the new active
            # replica goes on from the ledger as it stands.
            log.warning("cycle stopped: %s", exc)
            not_active = True
        stats = self.ledger.stats()
        counts = stats.counts
        since = stats.pending_since
        waited = 0.0 if since is None else (self.clock() - since).total_seconds()
        self.metrics.oldest_pending_age.set(max(waited, 0.0))
        pending = counts["pending"]
        result = CycleResult(
            started,
            self.clock(),
            collect,
            delivery,
            jenkins_error,
            pending,
            webhook_failing=self.gate.failing_since_success,
            not_active=not_active,
        )
        self.ledger.record_cycle(
            kind="cycle",
            started_at=started,
            finished_at=result.finished_at,
            succeeded=result.succeeded,
            collected=collect.builds_collected,
            delivered=delivery.delivered,
            failed=delivery.dead + len(collect.job_errors),
            jenkins_requests=self.jenkins.total_requests - requests_before,
        )
        self.metrics.cycle_duration.observe(time.perf_counter() - t0)
        self.metrics.pending_rows.set(pending)
        self.metrics.observe_rows(counts)
        if result.succeeded:
            self.metrics.last_success.set(result.finished_at.timestamp())
        # A cycle that failed must not read like a quiet success in the log.
        log.log(logging.INFO if result.succeeded else logging.WARNING, "%s", result.summary())
        return result
