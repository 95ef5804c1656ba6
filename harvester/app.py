"""The one place that builds the parts from the settings: clients, ledger, collector, deliverer,
and the :class:`~harvester.cycle.Harvester` that holds them. Nothing else reads ``Settings`` to
construct anything, so a new setting reaches the code through one function here."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

from harvester.collect.attachments import AttachmentReader
from harvester.collect.collector import Collector
from harvester.config import DEFAULT_RESULT_MAP, LedgerSettings, Settings
from harvester.cycle import Clock, Harvester
from harvester.daemon.metrics import Metrics
from harvester.daemon.status import HealthCheck
from harvester.delivery.deliverer import Deliverer
from harvester.delivery.gate import DeliveryGate
from harvester.errors import HarvesterError
from harvester.jenkins.client import JenkinsClient
from harvester.ledger import Ledger
from harvester.replica import Membership
from harvester.sei.envelope import Envelope
from harvester.sei.mapping import MappingRules
from harvester.sei.webhook import WebhookClient
from harvester.web.page import StatusPage
from harvester.web.views import Views

log = logging.getLogger("harvester")


def now() -> datetime:
    """The clock every part is given (tests give their own)."""
    return datetime.now(tz=UTC)


def mapping_rules(settings: Settings) -> MappingRules:
    return MappingRules(
        instance_name=settings.sei.instance_name,
        instance_guid=settings.sei.instance_guid,
        instance_url=settings.instance_url,
        # A partial mapping.result only overrides the results it names.
        result_map={**DEFAULT_RESULT_MAP, **settings.mapping.result},
        cd_jobs=tuple(settings.mapping.cd_jobs),
        redact_parameters=tuple(settings.mapping.redact_parameters),
        library_remotes=tuple(settings.mapping.library_remotes),
        job_identity=settings.mapping.job_identity,
    )


def jenkins_client(settings: Settings, metrics: Metrics | None = None) -> JenkinsClient:
    client = JenkinsClient(
        settings.jenkins.url,
        settings.jenkins.username,
        settings.jenkins.secret.get_secret_value(),
        timeout=settings.jenkins.timeout_seconds,
        verify_tls=settings.jenkins.verify_tls,
        max_concurrency=settings.jenkins.max_concurrency,
        max_response_bytes=settings.jenkins.max_response_mib * 1024 * 1024,
        observer=None if metrics is None else metrics.observe_jenkins,
    )
    if metrics is not None:
        metrics.watch_jenkins_concurrency(lambda: client.governor.limit)
    return client


def webhook_client(settings: Settings) -> WebhookClient:
    return WebhookClient(
        settings.sei.url,
        settings.sei.secret.get_secret_value(),
        auth_scheme=settings.sei.auth_scheme,
        timeout=settings.sei.timeout_seconds,
        max_concurrency=settings.sei.max_concurrency,
        channel=settings.sei.channel,
    )


def open_ledger(settings: Settings | LedgerSettings, controller: str | None = None) -> Ledger:
    """The ledger, migrated first as by every command that opens it.
    Scoped to ``controller``, or, with a full config, to ``jenkins.name``."""
    connections = 10
    if isinstance(settings, Settings):
        controller = controller or settings.jenkins.controller
        # Collecting threads (each may hold a job's lease), delivery workers, and a few more.
        connections = settings.jenkins.max_concurrency + settings.sei.max_concurrency + 4
    return Ledger.open(
        settings.ledger.url,
        controller=controller,
        migrate=True,
        connections=connections,
        password=settings.ledger.password,
    )


def open_ledger_to_read(settings: Settings) -> Ledger | None:
    """The ledger as it is, for a run that writes nothing; None when there is none yet."""
    return Ledger.open_to_read(
        settings.ledger.url,
        controller=settings.jenkins.controller,
        password=settings.ledger.password,
    )


def open_ledger_for_delivery(settings: Settings) -> Ledger:
    """The ledger of a process that collects and delivers: a 0.1 ledger's rows adopted for this
    controller."""
    ledger = open_ledger(settings)
    adopted = ledger.adopt()
    if adopted:
        log.warning(
            "the ledger's %d build(s) from before controllers were known now belong to "
            "controller %r (jenkins.name)",
            adopted,
            ledger.controller,
        )
    return ledger


def join_replicas(
    settings: Settings, ledger: Ledger, kind: str, metrics: Metrics | None = None
) -> Membership:
    """This process as a replica of its controller: a daemon contends for the
    controller's lease; a second daemon on one SQLite ledger is refused here."""
    membership = Membership(ledger, kind, settings.harvest.interval_seconds)
    if metrics is not None:
        membership.listen(lambda active: metrics.replica_active.set(1 if active else 0))
    membership.join()
    try:
        released = ledger.release_dead_claims()
    except HarvesterError as exc:  # the cycles release them too, once the ledger answers
        log.warning("could not release the claims of stopped replicas yet: %s", exc)
        released = 0
    if released:
        log.info(
            "%d build(s) claimed by a replica or run that stopped mid-delivery are due again",
            released,
        )
    return membership


def make_collector(
    settings: Settings,
    jenkins: JenkinsClient,
    ledger: Ledger | None,
    *,
    stop: threading.Event | None = None,
    clock: Clock = now,
    metrics: Metrics | None = None,
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
        events=None if metrics is None else metrics.observe_collect,
        attachments=AttachmentReader(jenkins, logs=settings.sei.logs, tests=settings.sei.tests)
        if settings.sei.logs or settings.sei.tests
        else None,
    )


def delivery_gate(settings: Settings) -> DeliveryGate:
    """Pacing, 429 pauses and outage state: one per process, kept across cycles."""
    return DeliveryGate(settings.sei.max_requests_per_minute, burst=settings.sei.max_concurrency)


def make_deliverer(
    settings: Settings,
    webhook: WebhookClient,
    ledger: Ledger,
    metrics: Metrics,
    stop: threading.Event,
    gate: DeliveryGate,
    clock: Clock = now,
    replica: Membership | None = None,
) -> Deliverer:
    rules = mapping_rules(settings)
    return Deliverer(
        webhook,
        ledger,
        max_attempts=settings.sei.max_attempts,
        concurrency=settings.sei.max_concurrency,
        clock=clock,
        gate=gate,
        envelope=Envelope(rules),
        stop=stop,
        observer=metrics.observe_delivery,
        owner="harvester" if replica is None else replica.owner(),
        active=None if replica is None else (lambda: replica.active),
    )


def build_harvester(settings: Settings, stop: threading.Event, kind: str = "once") -> Harvester:
    """Wire the parts from the settings: the one place clients and engines are created.
    ``kind``: ``daemon`` (works only while its controller's active replica), ``once`` or
    ``catch-up`` (work beside the daemons, never fenced)."""
    ledger = open_ledger_for_delivery(settings)
    metrics = Metrics()
    try:
        replica = join_replicas(settings, ledger, kind, metrics)
    except BaseException:
        ledger.close()
        raise
    metrics.replica_active.set(1 if replica.active else 0)
    jenkins = jenkins_client(settings, metrics)
    jenkins.admit = lambda: replica.active
    webhook = webhook_client(settings)
    gate = delivery_gate(settings)
    return Harvester(
        jenkins=jenkins,
        webhook=webhook,
        ledger=ledger,
        metrics=metrics,
        clock=now,
        stop=stop,
        since=settings.harvest.since,
        new_collector=lambda clock: make_collector(
            settings, jenkins, ledger, stop=stop, clock=clock
        ),
        gate=gate,
        new_deliverer=lambda clock: make_deliverer(
            settings, webhook, ledger, metrics, stop, gate, clock, replica
        ),
        replica=replica,
    )


def status_page(settings: Settings, harvester: Harvester, health: HealthCheck) -> StatusPage:
    """The status page of a daemon: its ledger, and what the running parts say about themselves."""

    def live() -> dict[str, Any]:
        healthy, detail = health()
        state, note = harvester.gate.describe()
        return {
            "healthy": healthy,
            "health": detail,
            "role": "active" if harvester.replica is None else harvester.replica.role,
            "jenkins_in_flight": harvester.jenkins.governor.in_flight,
            "jenkins_limit": harvester.jenkins.governor.limit,
            "delivery_state": state,
            "delivery_note": note,
        }

    views = Views(harvester.ledger, live)
    threading.Thread(target=views.warm, daemon=True, name="status-page-warm").start()
    token = settings.server.admin_token
    return StatusPage(views, admin_token=None if token is None else token.get_secret_value())


def close_harvester(harvester: Harvester) -> None:
    harvester.jenkins.close()
    harvester.webhook.close()
    if harvester.replica is not None:
        harvester.replica.leave()
    harvester.ledger.close()
