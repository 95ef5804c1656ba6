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
from datetime import datetime

from harvester.attempt import Attempt
from harvester.delivery.backoff import IN_CYCLE_ATTEMPTS, TRANSIENT_STREAK_LIMIT, next_attempt_delay
from harvester.errors import WebhookCredentialsRejected
from harvester.ledger import Ledger, LedgerEntry
from harvester.sei.webhook import WebhookClient

log = logging.getLogger(__name__)


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

        def record(result: Attempt) -> None:
            nonlocal status
            now = self.clock()
            # Wrong credentials are fixed by a person, not by time: due again next cycle.
            due = (
                now
                if result.outcome == "credentials"
                else now + next_attempt_delay(entry.attempts + 1)
            )
            status = self.ledger.record_attempt(
                entry.id, result.due_at(due), now=now, max_attempts=self.max_attempts
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
