"""harvest.single_cpu (harvester.util.affinity): the arithmetic on /proc/stat (the real thing is in
tests/integration/test_affinity.py)."""

from __future__ import annotations

from harvester.util.affinity import busy_ticks, least_busy, others_use

STAT = """cpu  300 0 300 1000 10 0 0 0 0 0
cpu0 100 0 100 500 5 0 0 0 0 0
cpu1 200 0 200 500 5 0 0 0 0 0
intr 12345
"""


def test_busy_ticks_counts_all_but_idle_and_io_wait() -> None:
    assert busy_ticks(STAT) == {0: 200, 1: 400}


def test_the_least_busy_cpu_does_not_count_the_harvesters_own_use() -> None:
    before = {0: 0, 1: 0, 2: 0}
    after = {0: 90, 1: 30, 2: 60}
    # On CPU 0, 80 of its 90 ticks were ours: others used it least.
    assert others_use(before, after, {0, 1, 2}, current=0, own_ticks=80) == {0: 10, 1: 30, 2: 60}
    assert least_busy(others_use(before, after, {0, 1, 2}, current=0, own_ticks=80)) == 0
    assert least_busy(others_use(before, after, {0, 1, 2}, current=0, own_ticks=10)) == 1
    assert least_busy(others_use(before, after, {0, 2}, current=None, own_ticks=0)) == 2
    assert least_busy({3: 5, 1: 5}) == 1  # a tie: the lowest number
