"""The sending half of a cycle: ``pending`` rows → the webhook → ``sent``/``dead``.

Outbox discipline: a row is marked ``sent`` only after a 2xx, in the same transaction that records the
attempt, committed before the worker starts its next POST. Rows are
claimed (leased) before sending and the claim is held, and renewed, across a row's in-cycle retries
and pauses; an outcome is recorded only for a row the worker still holds, so
no row is sent by two workers or two processes except after a crash (then at worst twice).

Pacing, 429 pauses and outages are the shared :class:`~harvester.delivery.gate.DeliveryGate`'s.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from harvester.attempt import Attempt
from harvester.delivery.backoff import IN_CYCLE_ATTEMPTS, next_attempt_delay
from harvester.delivery.gate import DeliveryGate
from harvester.errors import (
    NotActive,
    WebhookCredentialsRejected,
    WebhookError,
    WebhookUrlRejected,
)
from harvester.ledger import Ledger, LedgerEntry
from harvester.sei.webhook import WebhookClient

log = logging.getLogger(__name__)

RENEW_AFTER_SECONDS = 60.0
"""A worker renews its claim before a POST once it has held it this long (the lease is 5 min)."""

DeliveryObserver = Callable[[str], None]
"""Called with each attempt's outcome, and with ``pause:throttled`` / ``pause:outage``."""


@dataclass
class DeliveryReport:
    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    throttled: int = 0
    failures: int = 0  # transient failures (POSTs), whatever became of the rows
    credentials_error: WebhookCredentialsRejected | None = None
    url_error: WebhookUrlRejected | None = None
    receiver_down: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, status: str) -> None:
        with self._lock:
            if status == "sent":
                self.delivered += 1
            elif status == "dead":
                self.dead += 1
            elif status == "pending":
                self.retrying += 1
            elif status == "throttled":
                self.throttled += 1
            elif status == "failure":
                self.failures += 1

    @property
    def webhook_failing(self) -> bool:
        """Every POST of this run failed (none got through), or delivery met an outage."""
        return self.receiver_down or (self.delivered == 0 and self.failures > 0)

    @property
    def stopping_error(self) -> WebhookError | None:
        """What stopped delivery for every build (credentials or URL), if anything did."""
        return self.credentials_error or self.url_error


class Deliverer:
    def __init__(
        self,
        webhook: WebhookClient,
        ledger: Ledger,
        *,
        max_attempts: int,
        concurrency: int,
        clock: Callable[[], datetime],
        gate: DeliveryGate | None = None,
        envelope: Callable[[str], str] | None = None,
        stop: threading.Event | None = None,
        observer: DeliveryObserver | None = None,
        wait_initial: float = 0.2,
        owner: str = "harvester",
        active: Callable[[], bool] | None = None,
    ) -> None:
        self.webhook = webhook
        self.ledger = ledger
        self.max_attempts = max_attempts
        self.concurrency = max(concurrency, 1)
        self.clock = clock
        self.gate = gate or DeliveryGate(0)
        self.envelope = envelope
        self.stop = stop or threading.Event()
        self.observer = observer
        self.wait_initial = wait_initial
        self.owner = owner  # recorded on the rows this deliverer claims (Ledger.claim_due)
        # False: this daemon is no longer its controller's active replica: no new POST.
        self.active = active or (lambda: True)
        self.report = DeliveryReport()  # live: catch-up's progress reads it while sending
        self._halt = threading.Event()  # credentials or URL rejected: this run only

    def _observe(self, what: str) -> None:
        if self.observer is not None:
            self.observer(what)

    # -- the loop --------------------------------------------------------------------------------

    def deliver_due(self, *, until: threading.Event | None = None) -> DeliveryReport:
        """Send every due row, oldest build first, ``concurrency`` at a time. With ``until``,
        keep polling for new rows until that event is set (collection running alongside), and
        ride out an outage by probing until it ends or collection is done."""
        report = self.report
        if self.gate.first_cycle:
            # The operator may have fixed the cause: try every pending row now, whatever its backoff.
            self.gate.first_cycle = False
            self.ledger.make_due(None, self.clock())
        if self.gate.outage and not self._probe(until):
            report.receiver_down = True
            return report
        batch_size = self.concurrency * 8
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="deliver") as pool:
            while not self.stop.is_set() and not self._halt.is_set() and self.active():
                finished_collecting = until is None or until.is_set()
                batch = self.ledger.claim_due(self.clock(), batch_size, self.owner)
                if not batch:
                    if finished_collecting:
                        break
                    time.sleep(0.05)
                    continue
                for future in [pool.submit(self._deliver_one, entry) for entry in batch]:
                    future.result()
                if self.gate.outage:
                    report.receiver_down = True
                    if not self._probe(until):
                        break
                    report.receiver_down = False
        return report

    def _files(self, entry: LedgerEntry) -> bytes | None:
        """The plugin channel's zip stored with the row, if it has one (read now, not claimed)."""
        return None if entry.files_summary is None else self.ledger.files_data(entry.id)

    def _probe(self, until: threading.Event | None) -> bool:
        """In an outage: wait for the next probe time (only while collection runs alongside,
        else leave it to a later cycle), POST one build, and say whether the receiver is back."""
        while not self.stop.is_set() and not self._halt.is_set() and self.active():
            wait = self.gate.probe_due_in()
            if wait > 0:
                if until is None or until.is_set():
                    return False
                self.stop.wait(min(wait, 0.5))
                continue
            batch = self.ledger.claim_due(self.clock(), 1, self.owner)
            if not batch:
                return True  # nothing is due: nothing to probe with
            self._deliver_one(batch[0], probe=True)
            if not self.gate.outage:
                log.warning("the webhook accepts builds again; delivery resumes")
                return True
            next_in = self.gate.probe_failed()
            self._observe("pause:outage")
            log.warning("the webhook is still failing; next probe in %.0f s", next_in)
            if until is None or until.is_set():
                return False
        return False

    # -- one row ---------------------------------------------------------------------------------

    def _deliver_one(self, entry: LedgerEntry, *, probe: bool = False) -> None:
        report, gate = self.report, self.gate
        if self.stop.is_set() or self._halt.is_set() or (gate.outage and not probe):
            self.ledger.release([entry.id], self.owner)  # not attempted: due again at once
            return
        body = entry.payload if self.envelope is None else self.envelope(entry.payload)
        changed = body is not entry.payload and body != entry.payload
        held_since = time.monotonic()
        lost = False
        status = "pending"
        next_due: datetime | None = None

        def admit() -> bool:
            nonlocal held_since, lost
            if lost:
                return False
            if probe:
                if self.stop.is_set():
                    return False
            elif not gate.wait_turn(self.stop, self._halt):
                return False
            if not self.active():  # asked last, right before the POST: the wait may be long
                return False
            if time.monotonic() - held_since > RENEW_AFTER_SECONDS:
                if entry.id not in self.ledger.renew([entry.id], self.owner, self.clock()):
                    lost = True  # the lease ran out and another worker took the row
                    return False
                held_since = time.monotonic()
            return True

        def throttled(retry_after: float | None) -> None:
            nonlocal next_due
            pause = gate.throttled(retry_after)
            next_due = self.clock() + timedelta(seconds=pause)
            report.count("throttled")
            self._observe("pause:throttled")

        def record(result: Attempt) -> None:
            nonlocal status, lost, next_due
            now = self.clock()
            counted = True
            kind = result.outcome
            if kind == "retry":
                report.count("failure")
                counted, began_outage = gate.failed(entry.id, self._refund)
                next_due = now + next_attempt_delay(entry.attempts + 1)
                if began_outage:
                    self._observe("pause:outage")
                    log.error(
                        "the webhook failed for several builds in a row (last: %s): delivery "
                        "pauses and probes it again, 1 s doubling to 5 min apart; rows stay "
                        "pending and the outage counts no attempts",
                        result.error,
                    )
            elif kind in ("sent", "dead"):
                gate.succeeded()  # the receiver answered on its merits: it is up
            elif kind != "throttled":
                next_due = now  # credentials or URL: fixed by a person, due once they are
            due = next_due or now
            attempt = dataclasses.replace(
                result, next_attempt_at=due, counted=counted, body=body if changed else None
            )
            status = self.ledger.record_attempt(
                entry.id,
                attempt,
                now=now,
                max_attempts=self.max_attempts,
                owner=self.owner,
                keep_claim=kind in ("retry", "throttled"),
            )
            if status == "lost":
                lost = True
            self._observe(kind)

        budget = self.max_attempts - entry.attempts
        try:
            result = self.webhook.deliver(
                self.webhook.request(body, self._files(entry), entry.files_summary),
                attempts=1 if probe else max(1, min(IN_CYCLE_ATTEMPTS, budget)),
                on_attempt=record,
                admit=admit,
                throttled=throttled,
                wait_initial=self.wait_initial,
            )
        except (WebhookCredentialsRejected, WebhookUrlRejected) as exc:
            if isinstance(exc, WebhookUrlRejected):
                report.url_error = exc
            else:
                report.credentials_error = exc
            if not self._halt.is_set():
                self._halt.set()
                log.error("%s", exc)
            return
        except NotActive as exc:
            # Its outcome could not be recorded: another replica is active now, and sends the
            # row again (a build in flight at a takeover may be sent twice).
            if not self._halt.is_set():
                self._halt.set()
                log.warning("delivery stops: %s", exc)
            return
        except Exception:  # one build's failure never stops the others
            log.exception("%s #%d: delivery failed unexpectedly", entry.job, entry.number)
            self.ledger.release([entry.id], self.owner, self.clock() + next_attempt_delay(1))
            report.count("pending")
            return
        if lost:
            return  # another worker holds the row now: it decides
        if status == "pending":
            # Not sent this cycle (retries spent, paused, or stopped): hand the claim back, due
            # at its backoff (or the receiver's Retry-After).
            self.ledger.release([entry.id], self.owner, next_due)
        report.count(status)
        if status == "dead":
            error = result.error if result is not None else None
            log.warning("%s #%d is dead: %s", entry.job, entry.number, error)
        elif status == "pending" and result is not None and result.outcome != "sent":
            log.info("%s #%d not delivered yet: %s", entry.job, entry.number, result.error)

    def _refund(self, ids: list[int]) -> None:
        self.ledger.refund_attempts(ids, self.clock())
