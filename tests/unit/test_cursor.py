"""The cursor arithmetic of ARCHITECTURE "The ledger's tables" (harvester.collect.cursor), without Jenkins or a ledger."""

from __future__ import annotations

import pytest

from harvester.collect.cursor import (
    FROM_THE_START,
    JobScan,
    Window,
    first_page_size,
    is_last_page,
    recreated,
    window_for,
)
from harvester.jenkins.models import BUILDS_PAGE

SINCE = 1_000_000


def scan_pages(
    window: Window,
    builds: list[tuple[int, int, bool]],
    *,
    known: dict[int, set[int]] | None = None,
    last_build: int | None = None,
    last_completed: int | None = None,
    stopped: bool = False,
    held: set[int] | None = None,
) -> tuple[list[int], int | None]:
    """Feed (number, timestamp, finished) entries, newest first, as the collector does; returns
    the numbers taken and the new cursor (``held``, if given, receives the held numbers)."""
    scan = JobScan(window, known=dict(known or {}))
    taken = []
    for number, timestamp, finished in builds:
        if scan.see(number, timestamp) != "new":
            continue
        if scan.before_since(timestamp):
            continue
        if not finished:
            scan.hold(number)
            continue
        taken.append(number)
    if held is not None:
        held |= scan.held
    return taken, scan.new_cursor(last_build, last_completed, stopped=stopped)


# -- which jobs a cycle scans ------------------------------------------------------------------


def test_a_job_that_never_finished_a_build_costs_no_request() -> None:
    assert window_for(None, None, SINCE) is None
    assert window_for(7, None, SINCE) is None


def test_nothing_finished_above_the_cursor_costs_no_request() -> None:
    assert window_for(5, 5, SINCE) is None
    assert window_for(6, 5, SINCE) is None  # a cursor above lastCompleted (a re-created job)


def test_a_job_with_a_cursor_is_scanned_from_it_however_old() -> None:
    assert window_for(5, 6, SINCE) == Window(above=5, since_ms=None)


def test_a_job_seen_for_the_first_time_is_scanned_back_to_since() -> None:
    assert window_for(None, 3, SINCE) == Window(above=0, since_ms=SINCE)


# -- paging ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("above", "last_build", "size"),
    [
        (5, 8, 3),  # only as many as can be new
        (5, 6, 1),
        (0, 250, BUILDS_PAGE),  # capped at Jenkins' 100
        (5, 5, BUILDS_PAGE),  # nothing can be new by number: ask for a whole page anyway
        (5, None, BUILDS_PAGE),
    ],
)
def test_first_page_size(above: int, last_build: int | None, size: int) -> None:
    assert first_page_size(Window(above=above), last_build) == size


def page(*numbers: int, timestamp: int = SINCE + 1) -> list[dict[str, object]]:
    return [{"number": n, "timestamp": timestamp} for n in numbers]


def test_a_short_page_is_the_last() -> None:
    assert is_last_page(page(9, 8), 3, Window(above=0))


def test_a_full_page_that_reaches_the_cursor_is_the_last() -> None:
    assert is_last_page(page(8, 7, 6), 3, Window(above=5))  # 6 is just above the cursor
    assert not is_last_page(page(9, 8, 7), 3, Window(above=5))


def test_a_full_page_that_reaches_before_since_is_the_last() -> None:
    window = Window(above=0, since_ms=SINCE)
    assert is_last_page(page(9, 8, 7, timestamp=SINCE - 1), 3, window)
    assert not is_last_page(page(9, 8, 7, timestamp=SINCE), 3, window)
    # Without `since` (a job with a cursor), old builds do not end the paging.
    assert not is_last_page(page(9, 8, 7, timestamp=0), 3, Window(above=0))


# -- what a scan settles -----------------------------------------------------------------------


def test_all_finished_moves_the_cursor_to_the_newest() -> None:
    taken, cursor = scan_pages(
        Window(above=5),
        [(8, 1, True), (7, 1, True), (6, 1, True), (5, 1, True)],
        last_build=8,
        last_completed=8,
    )
    assert taken == [8, 7, 6]  # 5 is at the cursor: settled already
    assert cursor == 8


def test_out_of_order_completion_holds_the_running_build_by_number() -> None:
    # n+1 finished before n: n+1 is taken now, n is held and re-checked on its own; the cursor
    # moves past it, so newer builds are not listed again.
    held: set[int] = set()
    taken, cursor = scan_pages(
        Window(above=5),
        [(8, 1, True), (7, 1, False), (6, 1, True)],
        last_build=8,
        last_completed=8,
        held=held,
    )
    assert taken == [8, 6]
    assert held == {7}
    assert cursor == 8


def test_every_unfinished_build_is_held_and_none_pins_the_cursor() -> None:
    held: set[int] = set()
    _, cursor = scan_pages(
        Window(above=0),
        [(9, 1, False), (8, 1, True), (7, 1, False), (6, 1, True)],
        last_build=9,
        last_completed=8,
        held=held,
    )
    assert held == {9, 7}
    assert cursor == 9


def test_a_held_build_at_the_bottom_of_the_window_does_not_hold_the_cursor() -> None:
    held: set[int] = set()
    _, cursor = scan_pages(Window(above=5), [(7, 1, True), (6, 1, False)], last_build=7, held=held)
    assert (held, cursor) == ({6}, 7)


def test_known_numbers_are_skipped_but_still_seen() -> None:
    taken, cursor = scan_pages(
        Window(above=5),
        [(8, 1, True), (7, 1, True), (6, 1, True)],
        known={7: {1}, 8: {1}},
        last_build=8,
        last_completed=8,
    )
    assert taken == [6]
    assert cursor == 8


def test_deleted_builds_above_the_newest_listed_are_settled() -> None:
    # lastBuild is 10, but 9 and 10 were deleted: Jenkins lists only up to 8.
    _, cursor = scan_pages(
        Window(above=5), [(8, 1, True), (6, 1, True)], last_build=10, last_completed=10
    )
    assert cursor == 10


def test_unlisted_builds_that_may_still_run_are_not_settled() -> None:
    # lastBuild 10 is unlisted and lastCompletedBuild is 8: 9 and 10 may still be running.
    _, cursor = scan_pages(Window(above=5), [(8, 1, True)], last_build=10, last_completed=8)
    assert cursor == 8


def test_a_stop_part_way_leaves_the_cursor() -> None:
    taken, cursor = scan_pages(
        Window(above=5),
        [(8, 1, True), (7, 1, True)],
        last_build=8,
        last_completed=8,
        stopped=True,
    )
    assert taken == [8, 7]  # what was stored stays stored, and is known next time
    assert cursor is None


def test_builds_before_since_on_first_sight_are_settled_unsent() -> None:
    taken, cursor = scan_pages(
        Window(above=0, since_ms=SINCE),
        [(3, SINCE + 5, True), (2, SINCE - 5, True), (1, SINCE - 9, False)],
        last_build=3,
        last_completed=3,
    )
    assert taken == [3]
    assert cursor == 3  # 1 and 2 started before `since`: settled, never sent


def test_entries_that_are_not_numbers_or_below_the_window_are_ignored() -> None:
    scan = JobScan(Window(above=5))
    for number in (None, "7", True, 5, 2):
        assert scan.see(number, 1) == "outside"
    assert scan.newest_seen == 5
    assert scan.new_cursor(5, 5) is None


def test_nothing_new_does_not_move_the_cursor() -> None:
    assert scan_pages(Window(above=5), [(5, 1, True)], last_build=5, last_completed=5) == (
        [],
        None,
    )


# -- re-created jobs and reused numbers ----------------------------------------------------------


def test_a_last_build_below_the_cursor_is_a_re_created_job() -> None:
    assert recreated(37, 5)
    assert not recreated(37, 37)
    assert not recreated(37, 40)  # (it outgrew the old cursor: numbers look new, not reused)
    assert not recreated(None, 5)
    assert not recreated(37, None)


def test_a_known_number_with_another_start_time_is_reused() -> None:
    scan = JobScan(FROM_THE_START, known={1: {1000}, 2: {2000, 2500}})
    assert scan.see(1, 1000) == "known"
    assert scan.see(1, 1500) == "reused"  # the re-created job's #1
    assert scan.see(2, 2500) == "known"  # recorded skipped before: known now
    assert scan.see(3, 3000) == "new"
    assert scan.see(1, "not a time") == "known"  # cannot tell: leave it be


def test_a_re_created_job_is_collected_from_the_start_whatever_since() -> None:
    assert FROM_THE_START.since_ms is None
    taken, cursor = scan_pages(
        FROM_THE_START,
        [(3, 10, True), (2, 5, True), (1, 1, True)],
        known={1: {999}},  # the old job's #1
        last_build=3,
        last_completed=3,
    )
    assert taken == [3, 2]  # 1 is reused: recorded skipped by the collector, not taken
    assert cursor == 3


def test_a_build_left_for_later_keeps_the_cursor_below_it() -> None:
    scan = JobScan(Window(above=0, since_ms=None))
    for number in (9, 8, 7):
        assert scan.see(number, number) == "new"
    scan.leave(9)  # started after a catch-up's window: the daemon collects it
    assert scan.new_cursor(9, 9) == 8
