"""The delivery gate: one per process, shared by every delivery worker and kept across
cycles. It paces POSTs (a token bucket over ``sei.max_requests_per_minute``), pauses every worker on a
429, and tells an outage (everything fails transiently) from one bad build (it fails while others
are accepted), so that an outage spends no attempts and no row ever dies of one.

Time is ``time.monotonic``; waits are on a ``threading.Event`` so that a stop ends them at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

THROTTLE_FIRST_PAUSE = 1.0
THROTTLE_MAX_PAUSE = 60.0
"""A 429 without Retry-After pauses 1 s, doubling to 60 s while the receiver keeps throttling."""

OUTAGE_STREAK = 3
"""Builds that failed transiently in a row, across all workers and with no 2xx between them: an
outage (one build failing again and again is that build's problem, not the receiver's)."""
ACCEPTING_WINDOW = 300.0
"""A failure counts toward ``sei.max_attempts`` only if the receiver accepted a build this recently."""
PROBE_FIRST_WAIT = 1.0
PROBE_MAX_WAIT = 300.0
"""During an outage one build probes the receiver, 1 s after the outage began, doubling to 5 min."""

Refund = Callable[[list[int]], None]


class DeliveryGate:
    def __init__(
        self,
        max_requests_per_minute: float,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = max_requests_per_minute / 60.0  # tokens per second; 0 = no pacing
        self.capacity = float(max(burst, 1))
        self._tokens = self.capacity
        self._refilled = clock()
        self._clock = clock
        self._lock = threading.Lock()
        self.paused_until = 0.0
        self._throttle_pause = THROTTLE_FIRST_PAUSE
        # Outage detection.
        self.outage = False
        self.next_probe_at = 0.0
        self._probe_wait = PROBE_FIRST_WAIT
        self._streak: set[int] = set()  # rows that failed transiently since the last 2xx
        self._counted: list[int] = []  # failures counted as attempts since the last 2xx
        self._last_success: float | None = None
        self.failing_since_success = False
        self.first_cycle = True  # the first cycle of a process ignores every row's backoff

    def describe(self) -> tuple[str, str]:
        """What delivery is doing, for people (the status page): ``flowing``, ``paused`` (a 429)
        or ``outage``, and a sentence."""
        with self._lock:
            now = self._clock()
            if self.outage:
                wait = max(self.next_probe_at - now, 0.0)
                return "outage", (
                    f"every build failed transiently: one probes the receiver in {wait:.0f} s; "
                    "no attempt is counted meanwhile"
                )
            if self.paused_until > now:
                return "paused", (
                    f"the receiver answered 429: every worker waits {self.paused_until - now:.0f} s"
                )
        pace = "unpaced" if self.rate <= 0 else f"paced at {self.rate * 60:.0f} requests/min"
        return "flowing", pace

    # -- pacing and pauses -----------------------------------------------------------------------

    def wait_turn(self, stop: threading.Event, halt: threading.Event) -> bool:
        """Block until this worker may POST: not paused, and a token is free. False when
        ``stop`` or ``halt`` is set meanwhile (or delivery is in an outage)."""
        while True:
            if stop.is_set() or halt.is_set():
                return False
            with self._lock:
                now = self._clock()
                if self.outage:
                    return False
                wait = self.paused_until - now
                if wait <= 0:
                    if self.rate <= 0:
                        return True
                    self._tokens = min(
                        self.capacity, self._tokens + (now - self._refilled) * self.rate
                    )
                    self._refilled = now
                    if self._tokens >= 1:
                        self._tokens -= 1
                        return True
                    wait = (1 - self._tokens) / self.rate
            # Wake up now and then to notice a halt; a stop wakes us at once.
            stop.wait(min(wait, 0.25))

    def throttled(self, retry_after: float | None) -> float:
        """A 429: pause every worker for ``Retry-After``, else 1 s doubling to 60 s. Returns the
        pause, which also becomes the row's next attempt time if the cycle ends meanwhile."""
        with self._lock:
            if retry_after is not None:
                pause = retry_after
            else:
                pause = self._throttle_pause
                self._throttle_pause = min(self._throttle_pause * 2, THROTTLE_MAX_PAUSE)
            self.paused_until = max(self.paused_until, self._clock() + pause)
            self._tokens = 0.0  # resume at the paced rate, not with a burst
            return pause

    # -- outcomes ----------------------------------------------------------------------------------

    def succeeded(self) -> None:
        with self._lock:
            self._streak.clear()
            self._counted.clear()
            self._last_success = self._clock()
            self._throttle_pause = THROTTLE_FIRST_PAUSE
            self.failing_since_success = False
            self.outage = False
            self._probe_wait = PROBE_FIRST_WAIT

    def failed(self, row_id: int, refund: Refund) -> tuple[bool, bool]:
        """A transient failure of ``row_id``; returns whether it counts toward
        ``sei.max_attempts``, and whether it began an outage. It counts only while the receiver is
        accepting other builds (a 2xx within ACCEPTING_WINDOW, no outage); when several builds in
        a row fail, it is an outage: the attempts counted at its onset are handed back
        (``refund``) and delivery pauses."""
        to_refund: list[int] = []
        began = False
        with self._lock:
            now = self._clock()
            counted = (
                not self.outage
                and self._last_success is not None
                and now - self._last_success <= ACCEPTING_WINDOW
            )
            self.failing_since_success = True
            self._streak.add(row_id)
            if counted:
                self._counted.append(row_id)
            if not self.outage and len(self._streak) >= OUTAGE_STREAK:
                self.outage = began = True
                self.next_probe_at = now + self._probe_wait
                to_refund, self._counted = self._counted, []
        if to_refund:
            refund(to_refund)
        return counted, began

    def probe_failed(self) -> float:
        """The outage's probe failed too: wait longer before the next one. Returns the wait."""
        with self._lock:
            self._probe_wait = min(self._probe_wait * 2, PROBE_MAX_WAIT)
            self.next_probe_at = self._clock() + self._probe_wait
            return self._probe_wait

    def probe_due_in(self) -> float:
        with self._lock:
            return max(0.0, self.next_probe_at - self._clock())
