"""The Jenkins load governor's arithmetic (harvester.jenkins.governor), on hand-moved clocks."""

from __future__ import annotations

import threading
import time

from harvester.jenkins.governor import Governor


class Clocks:
    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def governor(self, ceiling: int) -> Governor:
        return Governor(ceiling, clock=lambda: self.wall, cpu=lambda: self.cpu)

    def answer(
        self,
        governor: Governor,
        kind: str,
        seconds: float,
        *,
        cpu_share: float = 0.1,
        failed: bool = False,
    ) -> None:
        self.wall += seconds
        self.cpu += seconds * cpu_share
        governor.record(kind, seconds, failed=failed)


def rounds(
    clocks: Clocks, governor: Governor, n: int, kind: str, seconds: float, **kwargs: object
) -> None:
    for _ in range(n):
        for _ in range(governor.limit):
            clocks.answer(governor, kind, seconds, **kwargs)  # type: ignore[arg-type]


def test_it_starts_at_one_and_rises_by_one_per_round_of_fast_answers_up_to_the_ceiling() -> None:
    clocks = Clocks()
    governor = clocks.governor(8)
    assert governor.limit == 1
    rounds(clocks, governor, 3, "builds", 0.02)
    assert governor.limit == 4
    rounds(clocks, governor, 20, "builds", 0.02)
    assert governor.limit == 8  # the ceiling: jenkins.max_concurrency


def test_a_failure_halves_it_once_per_round() -> None:
    clocks = Clocks()
    governor = clocks.governor(8)
    rounds(clocks, governor, 20, "builds", 0.02)
    for _ in range(8):  # a burst of failures in one round (8 answers): halved once
        clocks.answer(governor, "builds", 0.02, failed=True)
    assert governor.limit == 4
    rounds(clocks, governor, 1, "builds", 0.02, failed=True)
    assert governor.limit == 2
    rounds(clocks, governor, 5, "builds", 0.02, failed=True)
    assert governor.limit == 1  # never below one


def test_slow_answers_lower_it_and_fast_ones_raise_it_again() -> None:
    clocks = Clocks()
    governor = clocks.governor(16)
    rounds(clocks, governor, 40, "builds", 0.02)
    assert governor.limit == 16
    rounds(clocks, governor, 3, "builds", 0.08)  # 4 x the baseline
    assert governor.limit <= 16 * 0.75**3
    lowered = governor.limit
    rounds(clocks, governor, 10, "builds", 0.02)  # Jenkins recovered
    assert governor.limit > lowered


def test_slow_answers_while_this_process_is_cpu_bound_are_not_held_against_jenkins() -> None:
    clocks = Clocks()
    governor = clocks.governor(8)
    rounds(clocks, governor, 20, "builds", 0.02)
    assert governor.limit == 8
    # Our own threads waiting for the GIL: latency up, and the process uses a whole core.
    rounds(clocks, governor, 10, "builds", 0.08, cpu_share=1.0)
    assert governor.limit == 8
    rounds(clocks, governor, 1, "builds", 0.08, cpu_share=1.0, failed=True)
    assert governor.limit == 4  # errors still count


def test_each_kind_of_request_has_its_own_baseline() -> None:
    clocks = Clocks()
    governor = clocks.governor(8)
    for _ in range(40):  # wfapi describes are slower than builds pages, by nature
        clocks.answer(governor, "builds", 0.01)
        clocks.answer(governor, "wfapi", 0.05)
    assert governor.limit == 8


def test_no_more_requests_in_flight_than_the_limit() -> None:
    governor = Governor(8)
    in_flight, peak = 0, 0
    lock = threading.Lock()

    def request() -> None:
        nonlocal in_flight, peak
        with governor.slot():
            with lock:
                in_flight += 1
                peak = max(peak, in_flight)
            time.sleep(0.01)
            with lock:
                in_flight -= 1

    threads = [threading.Thread(target=request) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == 1  # the limit starts at one: nothing recorded yet
