"""Prometheus metrics: the only module that imports prometheus_client. One registry per process,
created by the CLI (no module-level collectors)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from harvester import __version__

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # CPU, memory, open files of this process
        PlatformCollector(registry=self.registry)
        Info("harvester_build", "The harvester's version", registry=self.registry).info(
            {"version": __version__}
        )
        self.rows = Gauge(
            "harvester_ledger_rows",
            "Ledger rows by status, as of the end of the last cycle",
            ["status"],
            registry=self.registry,
        )
        self.recreated_jobs = Counter(
            "harvester_recreated_jobs",
            "Jobs found deleted and re-created under the same name (collected from #1 again)",
            registry=self.registry,
        )
        self.truncated_stages = Counter(
            "harvester_truncated_stages",
            "Stages sent with exactly 100 steps, wfapi's limit: raise StageNodeExt.maxChildNodes",
            registry=self.registry,
        )
        self.delivery_pauses = Counter(
            "harvester_delivery_pauses",
            "Times every delivery worker paused: throttled (429) or outage (probes)",
            ["reason"],
            registry=self.registry,
        )
        self.replica_active = Gauge(
            "harvester_replica_active",
            "1 while this process is its controller's active replica (collects and delivers); "
            "0 for a standby",
            registry=self.registry,
        )
        self.builds_collected = Counter(
            "harvester_builds_collected",
            "Finished builds written to the ledger as pending",
            registry=self.registry,
        )
        self.deliveries = Counter(
            "harvester_deliveries",
            "Delivery attempts by outcome (sent, retry, throttled, dead, credentials, url)",
            ["outcome"],
            registry=self.registry,
        )
        self.jenkins_requests = Counter(
            "harvester_jenkins_requests",
            "Requests to Jenkins by kind and status class",
            ["kind", "status_class"],
            registry=self.registry,
        )
        self.jenkins_concurrency = Gauge(
            "harvester_jenkins_concurrency",
            "Requests to Jenkins allowed in flight now: the governor's limit, at most "
            "jenkins.max_concurrency",
            registry=self.registry,
        )
        self.cycle_duration = Histogram(
            "harvester_cycle_duration_seconds",
            "Duration of a cycle (collect and deliver)",
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800),
            registry=self.registry,
        )
        self.pending_rows = Gauge(
            "harvester_pending_rows", "Ledger rows waiting to be delivered", registry=self.registry
        )
        self.oldest_pending_age = Gauge(
            "harvester_oldest_pending_age_seconds",
            "How long the oldest pending row has waited since it was collected (0: none)",
            registry=self.registry,
        )
        self.last_success = Gauge(
            "harvester_last_success_timestamp_seconds",
            "Unix time at which the last successful cycle ended",
            registry=self.registry,
        )

    def observe_jenkins(self, kind: str, status: int | None) -> None:
        status_class = "error" if status is None else f"{status // 100}xx"
        self.jenkins_requests.labels(kind=kind, status_class=status_class).inc()

    def watch_jenkins_concurrency(self, limit: Callable[[], float]) -> None:
        self.jenkins_concurrency.set_function(limit)

    def observe_delivery(self, outcome: str) -> None:
        """An attempt's outcome, or ``pause:<reason>`` when delivery paused."""
        kind, _, reason = outcome.partition(":")
        if kind == "pause":
            self.delivery_pauses.labels(reason=reason).inc()
        else:
            self.deliveries.labels(outcome=outcome).inc()

    def observe_collect(self, event: str) -> None:
        """``recreated`` (a job) or ``truncated`` (a stage)."""
        if event == "recreated":
            self.recreated_jobs.inc()
        elif event == "truncated":
            self.truncated_stages.inc()

    def observe_rows(self, counts: dict[str, int]) -> None:
        for status, count in counts.items():
            self.rows.labels(status=status).set(count)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
