"""One cycle: collect, then deliver, then record how it went. Used by `run --once`, the daemon and
`demo`; `catch-up` runs both halves side by side (harvester.catchup)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from harvester.collect import Collector, CollectReport
from harvester.config import DEFAULT_RESULT_MAP, Settings
from harvester.deliver import Deliverer, DeliveryReport
from harvester.errors import ExitCode, JenkinsUnreachable
from harvester.jenkins import JenkinsClient
from harvester.ledger import Ledger
from harvester.mapping import MappingRules
from harvester.metrics import Metrics
from harvester.timeparse import resolve_when
from harvester.webhook import WebhookClient

log = logging.getLogger(__name__)


def claim_owner() -> str:
    """Who holds a claim on a ledger row: this process on this host."""
    return f"{socket.gethostname()}:{os.getpid()}"


def claim_owner_alive(owner: str) -> bool:
    """Whether a claim's owner may still be sending. Only a process on this host can be checked;
    any other owner (another replica) is assumed alive and its claim left to expire. A reused
    pid makes a dead owner look alive: its rows then wait out the lease, nothing worse."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def mapping_rules(settings: Settings) -> MappingRules:
    return MappingRules(
        instance_name=settings.sei.instance_name,
        instance_guid=settings.sei.instance_guid,
        instance_url=settings.instance_url,
        # A partial mapping.result only overrides the results it names.
        result_map={**DEFAULT_RESULT_MAP, **settings.mapping.result},
        cd_jobs=tuple(settings.mapping.cd_jobs),
        redact_parameters=tuple(settings.mapping.redact_parameters),
    )


def make_collector(
    settings: Settings,
    jenkins: JenkinsClient,
    ledger: Ledger | None,
    *,
    clock: Callable[[], datetime],
    stop: threading.Event | None = None,
) -> Collector:
    """A collector as the settings say. ``ledger`` None: nothing is read from or written to it
    (``preview``)."""
    return Collector(
        jenkins,
        ledger,
        mapping_rules(settings),
        include=settings.jenkins.include,
        exclude=settings.jenkins.exclude,
        clock=clock,
        workers=settings.jenkins.max_concurrency,
        stop=stop,
    )


@dataclass
class CycleResult:
    started_at: datetime
    finished_at: datetime
    collect: CollectReport
    delivery: DeliveryReport
    jenkins_error: JenkinsUnreachable | None
    pending_left: int

    @property
    def succeeded(self) -> bool:
        return (
            self.jenkins_error is None
            and not self.collect.job_errors
            and self.delivery.credentials_error is None
            and not self.delivery.receiver_down
        )

    @property
    def exit_code(self) -> int:
        """CONTRACT §2 and §4a: 3 only when Jenkins cannot be reached at all; 4 when the webhook
        rejected the credentials; 1 when work is left; else 0."""
        if self.jenkins_error is not None:
            return ExitCode.JENKINS_UNREACHABLE
        if self.delivery.credentials_error is not None:
            return ExitCode.WEBHOOK_CREDENTIALS
        if self.collect.job_errors or self.pending_left or self.delivery.dead:
            return ExitCode.WORK_LEFT
        return ExitCode.OK

    def summary(self) -> str:
        took = (self.finished_at - self.started_at).total_seconds()
        parts = [
            f"{self.collect.jobs_seen} jobs",
            f"{self.collect.builds_collected} collected",
            f"{self.delivery.delivered} delivered",
        ]
        if self.collect.builds_held:
            parts.append(f"{self.collect.builds_held} held back (running)")
        if self.delivery.retrying:
            parts.append(f"{self.delivery.retrying} to retry")
        if self.delivery.dead:
            parts.append(f"{self.delivery.dead} dead")
        if self.collect.job_errors:
            parts.append(f"{len(self.collect.job_errors)} job(s) failed")
        parts.append(f"{self.pending_left} pending")
        return f"cycle: {', '.join(parts)} in {took:.1f}s"


@dataclass
class Harvester:
    """The wired parts a cycle needs (built by the CLI, the one place that wires)."""

    settings: Settings
    jenkins: JenkinsClient
    webhook: WebhookClient
    ledger: Ledger
    metrics: Metrics
    clock: Callable[[], datetime]
    stop: threading.Event

    def collector(self) -> Collector:
        return make_collector(
            self.settings, self.jenkins, self.ledger, clock=self.clock, stop=self.stop
        )

    def deliverer(self) -> Deliverer:
        return Deliverer(
            self.webhook,
            self.ledger,
            max_attempts=self.settings.sei.max_attempts,
            concurrency=self.settings.sei.max_concurrency,
            clock=self.clock,
            stop=self.stop,
            observer=self.metrics.observe_delivery,
            owner=claim_owner(),
        )

    def run_cycle(self) -> CycleResult:
        started = self.clock()
        t0 = time.perf_counter()
        requests_before = self.jenkins.total_requests
        collect = CollectReport()
        jenkins_error = None
        try:
            collect = self.collector().collect(resolve_when(self.settings.harvest.since, started))
        except JenkinsUnreachable as exc:
            # Nothing can be collected, but what is pending can still be delivered.
            log.error("%s", exc)
            jenkins_error = exc
        self.metrics.builds_collected.inc(collect.builds_collected)
        delivery = self.deliverer().deliver_due()
        pending = self.ledger.pending_count()
        result = CycleResult(started, self.clock(), collect, delivery, jenkins_error, pending)
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
        if result.succeeded:
            self.metrics.last_success.set(result.finished_at.timestamp())
        log.info("%s", result.summary())
        return result
