"""harvest.single_cpu (harvester.util.affinity) on this machine's CPUs: every thread on one CPU,
moved off a CPU another process keeps busy, and every CPU given back at the end."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harvester.util.affinity import OneCpu

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux and two CPUs this process may use",
)


def thread_cpus() -> set[frozenset[int]]:
    """The CPU sets of this process's threads."""
    found = set()
    for task in Path("/proc/self/task").iterdir():
        try:
            found.add(frozenset(os.sched_getaffinity(int(task.name))))
        except ProcessLookupError:  # a thread that has just ended
            continue
    return found


def test_every_thread_keeps_to_one_cpu_and_gets_all_back_after() -> None:
    allowed = frozenset(os.sched_getaffinity(0))
    done = threading.Event()
    before = threading.Thread(target=done.wait)
    before.start()
    with OneCpu() as one:
        assert one.cpu in allowed
        later: list[set[int]] = []
        started = threading.Thread(target=lambda: later.append(os.sched_getaffinity(0)))
        started.start()
        started.join()
        assert later == [{one.cpu}]
        assert thread_cpus() == {frozenset({one.cpu})}  # the thread from before too
    assert thread_cpus() == {allowed}
    done.set()
    before.join()
    with OneCpu(enabled=False) as off:
        assert off.cpu is None
        assert thread_cpus() == {allowed}


def test_it_leaves_a_cpu_another_process_keeps_busy() -> None:
    with OneCpu(every=0.5) as one:
        first = one.cpu
        assert first is not None
        hog = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import os\nos.sched_setaffinity(0, {{{first}}})\nwhile 1: pass",
            ]
        )
        try:
            deadline = time.monotonic() + 10
            while one.cpu == first and time.monotonic() < deadline:
                time.sleep(0.1)
            assert one.cpu != first
            assert thread_cpus() == {frozenset({one.cpu})}
        finally:
            hog.kill()
            hog.wait()
