"""Keep the harvester's threads on one CPU (``harvest.single_cpu``, on by default; Linux only).

The harvester is one Python process: its dozen threads (requests to Jenkins, POSTs, ledger
writes) take turns holding the GIL, so it never uses more than about one core. Spread over
several CPUs, every hand-off of the GIL is a wake-up on another CPU, which on a virtual machine is
an inter-processor interrupt through the hypervisor. On one CPU the same hand-off is a switch
between threads. Measured on the catch-up of bench/RESULTS.md (issue 14): a quarter to a third
less CPU per build, and no slower.

Which CPU: the least busy of those the process may use (its cpuset, a container's
``--cpuset-cpus``), judged from ``/proc/stat`` without counting the harvester's own use, and
chosen again every ``every`` seconds (± a quarter, so that two harvesters on one host do not
move in step), so that a CPU another program loads is left. A move needs the other CPU to be
clearly less busy (a quarter of the interval), so the harvester does not go back and forth.
Leaving the ``with`` block gives the threads back every CPU they had.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Self

log = logging.getLogger(__name__)

PROC_STAT = Path("/proc/stat")
TASKS = Path("/proc/self/task")
FIRST_LOOK_SECONDS = 0.05
MOVE_MARGIN = 0.25  # of the interval: how much less busy another CPU must be to move there


def busy_ticks(stat: str) -> dict[int, int]:
    """Per CPU, the clock ticks not idle since boot (``/proc/stat``'s cpuN lines; waiting for
    I/O counts as idle, time stolen by the hypervisor as busy)."""
    busy: dict[int, int] = {}
    for line in stat.splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu":
            continue
        fields = [int(value) for value in rest.split()]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        busy[int(name[3:])] = sum(fields[:8]) - idle
    return busy


def others_use(
    before: dict[int, int],
    after: dict[int, int],
    allowed: set[int],
    *,
    current: int | None,
    own_ticks: int,
) -> dict[int, int]:
    """Per allowed CPU, the ticks other programs used between two samples: the harvester's own
    are taken off the CPU it was on (``current``)."""
    used = {cpu: after.get(cpu, 0) - before.get(cpu, 0) for cpu in allowed}
    if current in used:
        used[current] -= own_ticks
    return used


def least_busy(used: dict[int, int]) -> int:
    """The CPU others used least (the lowest number of those tied)."""
    return min(sorted(used), key=used.__getitem__)


class OneCpu:
    """``with OneCpu(enabled):`` the process's threads (those running and those started later)
    stay on one CPU, re-chosen every ``every`` seconds. A no-op when disabled, off Linux, or when
    the process may use only one CPU anyway."""

    def __init__(self, enabled: bool = True, every: float = 10.0) -> None:
        self.enabled = enabled
        self.every = every
        self.cpu: int | None = None
        self._allowed: set[int] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def __enter__(self) -> Self:
        if not self.enabled or not hasattr(os, "sched_setaffinity") or not PROC_STAT.exists():
            return self
        self._allowed = set(os.sched_getaffinity(0))
        if len(self._allowed) < 2:
            return self
        try:
            before, own = busy_ticks(PROC_STAT.read_text()), time.process_time()
            time.sleep(FIRST_LOOK_SECONDS)
            self._choose(before, own, moved_only_by=0)
        except OSError as exc:  # no /proc, or not allowed: the OS keeps spreading the threads
            log.debug("not keeping to one CPU: %s", exc)
            return self
        self._thread = threading.Thread(target=self._watch, name="cpu-affinity", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self.cpu is not None:
            _pin_all(self._allowed)
            self.cpu = None

    def _watch(self) -> None:
        before, own = busy_ticks(PROC_STAT.read_text()), time.process_time()
        # Jittered: two harvesters on one host that chose the same CPU must not both move to
        # the same other one at the same moment, and back, forever.
        while not self._stop.wait(self.every * random.uniform(0.75, 1.25)):  # noqa: S311
            try:
                before, own = self._choose(before, own, int(MOVE_MARGIN * self.every * self._hz))
            except OSError as exc:
                log.debug("could not re-choose the CPU: %s", exc)

    def _choose(
        self, before: dict[int, int], own: float, moved_only_by: int
    ) -> tuple[dict[int, int], float]:
        after, own_now = busy_ticks(PROC_STAT.read_text()), time.process_time()
        own_ticks = int((own_now - own) * self._hz)
        used = others_use(before, after, self._allowed, current=self.cpu, own_ticks=own_ticks)
        best = least_busy(used)
        if self.cpu is None or used[self.cpu] - used[best] > moved_only_by:
            _pin_all({best})
            log.debug("keeping the harvester's threads on CPU %d", best)
            self.cpu = best
        return after, own_now


def _pin_all(cpus: set[int]) -> None:
    """Every thread of this process (threads started later inherit their starter's CPUs)."""
    for task in TASKS.iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except (ProcessLookupError, PermissionError):  # a thread that has just ended
            continue
