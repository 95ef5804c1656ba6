"""How many requests to Jenkins may be in flight (issue 14): ``jenkins.max_concurrency`` is the
ceiling; below it, additive increase and multiplicative decrease, as TCP does.

- A 5xx, a timeout or a refused connection halves the limit (once per round).
- Response time well above its baseline lowers it by a quarter (once per round). The baseline is
  per kind of request (a builds page, a wfapi describe, ...) and is the fastest answer seen,
  drifting up slowly so that a Jenkins that became slower for good is re-learnt. The limit starts
  at 1, so the baseline is Jenkins' unloaded latency.
- A round of answers near the baseline raises it by one.
- While this process is busy on its own CPU, slow answers are not held against Jenkins: the time
  was spent waiting for our own threads (the GIL), and lowering the limit would only slow the
  harvester down. Errors still count.

A round is as many answers as the limit: every request in flight when the limit last changed has
come back. The clocks are injected, so the arithmetic is tested without Jenkins.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

SLOW = 1.5  # mean latency / baseline above which the limit goes down
FAST = 1.25  # ... below which it goes up
SMOOTHING = 0.2  # weight of the newest answer in the mean ratio
BASELINE_DRIFT = 1.0005  # per answer slower than the baseline: x2 after ~1,400 such answers
BUSY_CPU = 0.75  # share of one core above which this process counts as CPU-bound
CPU_TIME_CONSTANT = 0.25  # seconds: how quickly the measured share follows a change


class Governor:
    def __init__(
        self,
        ceiling: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        cpu: Callable[[], float] = time.process_time,
    ) -> None:
        self.ceiling = max(ceiling, 1)
        self._limit = 1.0
        self._in_flight = 0
        self._condition = threading.Condition()
        self._baseline: dict[str, float] = {}
        self._ratio = 1.0
        self._answers = 0  # since the limit last changed
        self._clock, self._cpu = clock, cpu
        self._last = (clock(), cpu())
        self._cpu_share = 0.0

    @property
    def limit(self) -> int:
        """The requests that may be in flight now (``/metrics``)."""
        return int(self._limit)

    @property
    def in_flight(self) -> int:
        """The requests in flight now (the status page)."""
        return self._in_flight

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._condition:
            while self._in_flight >= int(self._limit):
                self._condition.wait()
            self._in_flight += 1
        try:
            yield
        finally:
            with self._condition:
                self._in_flight -= 1
                self._condition.notify()

    def record(self, kind: str, seconds: float, *, failed: bool) -> None:
        """One answer (or failure) of a request of ``kind`` that took ``seconds``."""
        with self._condition:
            self._measure_cpu()
            self._answers += 1
            whole_round = self._answers >= int(self._limit)
            if whole_round:
                self._answers = 0  # the next round starts, whether the limit changes or not
            if failed:
                if whole_round:
                    self._change(max(1.0, self._limit / 2))
                return
            baseline = self._baseline.get(kind)
            if baseline is None or seconds < baseline:
                baseline = self._baseline[kind] = max(seconds, 1e-4)
            else:
                self._baseline[kind] = baseline * BASELINE_DRIFT
            self._ratio += SMOOTHING * (seconds / baseline - self._ratio)
            if not whole_round:
                return
            if self._ratio > SLOW and self._cpu_share < BUSY_CPU:
                self._change(max(1.0, self._limit * 0.75))
            elif self._ratio < FAST and self._limit < self.ceiling:
                self._change(min(float(self.ceiling), self._limit + 1))

    def _change(self, limit: float) -> None:
        self._limit = limit
        self._condition.notify_all()

    def _measure_cpu(self) -> None:
        """This process's share of one core, smoothed over about CPU_TIME_CONSTANT seconds."""
        now, cpu = self._clock(), self._cpu()
        then, cpu_then = self._last
        elapsed = now - then
        if elapsed <= 0:
            return
        weight = min(1.0, elapsed / CPU_TIME_CONSTANT)
        self._cpu_share += weight * ((cpu - cpu_then) / elapsed - self._cpu_share)
        self._last = (now, cpu)
