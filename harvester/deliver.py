"""The sending half of a cycle: ``pending`` rows → the webhook → ``sent``/``dead``.

Outbox discipline: a row is marked ``sent`` only after a 2xx, in the same transaction that records the
attempt. Rows are claimed (leased) before sending, so two workers or two replicas never send the same
row at once; a row whose worker dies becomes due again when its lease ends (at worst sent twice).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from harvester.errors import WebhookCredentialsRejected
from harvester.ledger import AttemptOutcome, Ledger, LedgerEntry
from harvester.webhook import PostResult, WebhookClient

log = logging.getLogger(__name__)

IN_CYCLE_ATTEMPTS = 3
"""POSTs per build within one cycle (quick, stamina's backoff) before waiting for a later cycle."""

TRANSIENT_STREAK_LIMIT = 8
"""Builds in a row that failed transiently after their in-cycle retries: the receiver is down; stop
for this cycle instead of spending every row's attempt budget on an outage."""


def next_attempt_delay(attempts: int) -> timedelta:
    """Backoff across cycles: 15 s, 30 s, 1 min, ... capped at 15 min."""
    return timedelta(seconds=min(15 * 2 ** max(attempts - 1, 0), 900))


@dataclass
class DeliveryReport:
    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    credentials_error: WebhookCredentialsRejected | None = None
    receiver_down: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, status: str) -> None:
        with self._lock:
            if status == "sent":
                self.delivered += 1
            elif status == "dead":
                self.dead += 1
            else:
                self.retrying += 1


DeliveryObserver = Callable[[str], None]


class Deliverer:
    def __init__(
        self,
        webhook: WebhookClient,
        ledger: Ledger,
        *,
        max_attempts: int,
        concurrency: int,
        clock: Callable[[], datetime],
        stop: threading.Event | None = None,
        observer: DeliveryObserver | None = None,
        wait_initial: float = 0.2,
        owner: str = "harvester",
    ) -> None:
        self.webhook = webhook
        self.ledger = ledger
        self.max_attempts = max_attempts
        self.concurrency = max(concurrency, 1)
        self.clock = clock
        self.stop = stop or threading.Event()
        self.observer = observer
        self.wait_initial = wait_initial
        self.owner = owner  # recorded on the rows this deliverer claims (Ledger.claim_due)
        self.report = DeliveryReport()  # live: catch-up's progress reads it while sending
        self._halt = threading.Event()  # credentials rejected or receiver down: this run only
        self._streak = 0
        self._streak_lock = threading.Lock()

    def deliver_due(self, *, until: threading.Event | None = None) -> DeliveryReport:
        """Send every due row, oldest build first, ``concurrency`` at a time. With ``until``,
        keep polling for new rows until that event is set (collection running alongside)."""
        report = self.report
        batch_size = self.concurrency * 8
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="deliver") as pool:
            while not self.stop.is_set() and not self._halt.is_set():
                finished_collecting = until is None or until.is_set()
                batch = self.ledger.claim_due(self.clock(), batch_size, self.owner)
                if not batch:
                    if finished_collecting:
                        break
                    time.sleep(0.05)
                    continue
                futures = [pool.submit(self._deliver_one, entry, report) for entry in batch]
                for future in futures:
                    future.result()
        return report

    def _deliver_one(self, entry: LedgerEntry, report: DeliveryReport) -> None:
        if self.stop.is_set() or self._halt.is_set():
            self.ledger.release([entry.id])  # not attempted: due again at once
            return
        budget = self.max_attempts - entry.attempts
        status = "pending"

        def record(result: PostResult) -> None:
            nonlocal status
            now = self.clock()
            attempts_after = entry.attempts + 1
            outcome = AttemptOutcome(
                outcome=result.outcome,
                http_status=result.http_status,
                error=result.error,
                duration_ms=result.duration_ms,
                # Wrong credentials are fixed by a person, not by time: due again next cycle.
                next_attempt_at=now
                if result.outcome == "credentials"
                else now + next_attempt_delay(attempts_after),
            )
            status = self.ledger.record_attempt(
                entry.id, outcome, now=now, max_attempts=self.max_attempts
            )
            if self.observer is not None:
                self.observer(result.outcome)

        try:
            result = self.webhook.deliver(
                entry.payload,
                attempts=max(1, min(IN_CYCLE_ATTEMPTS, budget)),
                on_attempt=record,
                wait_initial=self.wait_initial,
            )
        except WebhookCredentialsRejected as exc:
            report.credentials_error = exc
            self._halt.set()
            log.error("%s", exc)
            return
        except Exception:  # one build's failure never stops the others
            log.exception("%s #%d: delivery failed unexpectedly", entry.job, entry.number)
            self.ledger.release([entry.id], self.clock() + next_attempt_delay(1))
            report.count("pending")
            return
        report.count(status)
        with self._streak_lock:
            self._streak = self._streak + 1 if result.outcome == "retry" else 0
            if self._streak >= TRANSIENT_STREAK_LIMIT and not self._halt.is_set():
                report.receiver_down = True
                self._halt.set()
                log.error(
                    "the webhook failed for %d builds in a row (last: %s); stopping delivery until "
                    "the next cycle, rows stay pending",
                    self._streak,
                    result.error,
                )
        if status == "dead":
            log.warning("%s #%d is dead: %s", entry.job, entry.number, result.error)
        elif status == "pending":
            log.info("%s #%d not delivered yet: %s", entry.job, entry.number, result.error)
