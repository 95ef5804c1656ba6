"""The cursor arithmetic, pure: which builds a scan takes, when it stops paging, what
is settled afterwards. No I/O, no clock: the collector feeds it what Jenkins and the ledger said.

Per job, a cursor says "every build numbered at or below me is settled or held": in the ledger,
deliberately not sent because it started before ``harvest.since`` on first sight, or held back by
number because it could not be settled yet (still running, or its details failed to load). A cycle
asks only for builds above the cursor, re-checks held numbers one by one, and moves the cursor to the
newest build it saw: a held build never pins it, so newer builds are not listed again.
A build is never skipped (also when n+1 finishes before n) and never collected twice (the ledger's
unique key and the ``known`` numbers).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from harvester.jenkins.models import BUILDS_PAGE


@dataclass(frozen=True, slots=True)
class Window:
    """Which builds a scan takes: numbered above ``above`` and, if set, started at ``since_ms`` or
    later."""

    above: int = 0
    since_ms: int | None = None


def recreated(cursor: int | None, last_build: int | None) -> bool:
    """A job deleted and re-created under the same name starts again at #1: its ``lastBuild``
    is below the cursor."""
    return cursor is not None and last_build is not None and last_build < cursor


FROM_THE_START = Window(above=0, since_ms=None)
"""A re-created job's builds are all new: every one is collected, whatever ``harvest.since``."""


def window_for(cursor: int | None, last_completed: int | None, since_ms: int) -> Window | None:
    """The window a cycle scans for a job, or None when nothing finished above its cursor (then
    the job costs no request at all). A job seen for the first time (no cursor) is scanned back
    to ``harvest.since``; one with a cursor, from its cursor, however old."""
    if last_completed is None:
        return None
    if cursor is not None and last_completed <= cursor:
        return None
    return Window(above=cursor or 0, since_ms=None if cursor is not None else since_ms)


def first_page_size(window: Window, last_build: int | None) -> int:
    """The first page asks only for as many builds as can be new (numbers are dense, newest first)."""
    limit = (last_build or 0) - window.above
    return max(1, min(BUILDS_PAGE, limit)) if limit > 0 else BUILDS_PAGE


def is_last_page(page: Sequence[dict[str, Any]], size: int, window: Window) -> bool:
    """Whether paging stops after ``page`` (asked for ``size`` builds): the job has no more builds,
    or the page reached the bottom of the window (its number, or ``since``)."""
    if len(page) < size:
        return True
    number = page[-1].get("number")
    timestamp = page[-1].get("timestamp")
    if isinstance(number, int) and number <= window.above + 1:
        return True
    return (
        window.since_ms is not None and isinstance(timestamp, int) and timestamp < window.since_ms
    )


Seen = Literal["outside", "new", "known", "reused"]


@dataclass
class JobScan:
    """What one scan of a job has seen so far, and the cursor that follows from it.

    Feed it each build entry of the pages in turn: :meth:`see` for its number and start time,
    then, for a ``new`` build, :meth:`before_since`, and :meth:`hold` for one that cannot be
    settled yet. :meth:`new_cursor` says where the cursor goes once the pages are read."""

    window: Window
    known: dict[int, set[int]] = field(default_factory=dict)
    """Numbers above the window's bottom that the ledger holds, with their start times (ms)."""
    newest_seen: int = 0
    held: set[int] = field(default_factory=set)
    ceiling: int | None = None
    """The oldest build left for later without being held (it started after a catch-up's
    window): the cursor stays below it."""

    def __post_init__(self) -> None:
        self.newest_seen = max(self.newest_seen, self.window.above)

    def see(self, number: object, timestamp: object) -> Seen:
        """``outside`` the window (or not a number); ``known`` to the ledger; ``reused``: a
        number the ledger holds with another start time (a re-created job's); else ``new``."""
        if not isinstance(number, int) or isinstance(number, bool) or number <= self.window.above:
            return "outside"
        self.newest_seen = max(self.newest_seen, number)
        starts = self.known.get(number)
        if starts is None:
            return "new"
        if isinstance(timestamp, int) and timestamp not in starts:
            return "reused"
        return "known"

    def before_since(self, timestamp: int) -> bool:
        """Started before ``harvest.since`` on first sight: settled, deliberately not sent."""
        return self.window.since_ms is not None and timestamp < self.window.since_ms

    def hold(self, number: int) -> None:
        """``number`` cannot be settled this time (still running, or its details failed): it is
        held, and re-checked on its own each cycle."""
        self.held.add(number)

    def leave(self, number: int) -> None:
        """``number`` is neither settled nor held by this scan: keep the cursor below it."""
        if self.ceiling is None or number < self.ceiling:
            self.ceiling = number

    def new_cursor(
        self, last_build: int | None, last_completed: int | None, *, stopped: bool = False
    ) -> int | None:
        """Where the job's cursor moves after the scan, or None when it stays.

        It stays when the scan was stopped part-way (older pages were not read). Otherwise it moves
        to the newest build seen (held builds do not pin it), and past builds above that up to
        ``lastBuild`` that Jenkins did not list (deleted, or never existed), as long as none of
        them can still be running (``lastCompletedBuild``); never past a build left for later."""
        if stopped:
            return None
        settled = self.newest_seen
        if last_build is not None:
            settled = max(settled, min(last_build, last_completed or 0))
        if self.ceiling is not None:
            settled = min(settled, self.ceiling - 1)
        return settled if settled > self.window.above else None


@dataclass(frozen=True, slots=True)
class JobPlan:
    """What a cycle does for one job: scan a window (or not), and re-check held numbers."""

    window: Window | None
    held: frozenset[int]
    recreated: bool = False


def plan_for(
    last_build: int | None,
    last_completed_build: int | None,
    cursor: int | None,
    held: Iterable[int] | None,
    since_ms: int,
) -> JobPlan | None:
    """A job's plan from what discovery says of it and its cursor and held numbers; None:
    nothing to do this cycle."""
    if recreated(cursor, last_build):
        return JobPlan(FROM_THE_START, frozenset(), recreated=True)
    window = window_for(cursor, last_completed_build, since_ms)
    numbers = frozenset(held or ())
    if window is None and not numbers:
        return None
    return JobPlan(window, numbers)
