"""What each view of the status page shows, as plain JSON-ready data read from the ledger and the
running daemon: the HTML templates and ``/api/...`` are two renderings of the same dicts."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from harvester.errors import HarvesterError
from harvester.ledger import Held, Ledger, Row
from harvester.util.names import glob_match
from harvester.util.timeparse import age, iso_utc
from harvester.web.chart import MINUTES, chart

log = logging.getLogger("harvester.web")

PAGE_SIZE = 50
MAX_SEARCH_JOBS = 1000
"""A glob matching more jobs than this searches the first ones (sorted) and says so."""

Live = Callable[[], dict[str, Any]]
"""The running daemon's state: health, role, Jenkins requests in flight, the delivery gate."""


def _row(row: Row, now: datetime) -> dict[str, Any]:
    return {**row.as_json("seconds"), "age": age(row.started_at, now)}


def _held(held: Held, now: datetime) -> dict[str, Any]:
    return {**held.as_json("seconds"), "age": age(held.since, now)}


class Views:
    """The views, each one a few indexed queries (keyset pages: any page costs the same)."""

    def __init__(
        self, ledger: Ledger, live: Live, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.ledger = ledger
        self.live = live
        self.clock = clock or (lambda: datetime.now(tz=UTC))
        # The chart's finished minutes, read once: a render reads only the last few minutes.
        self._minutes: dict[str, tuple[int, int]] = {}
        self._read_until: datetime | None = None
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Read the chart's 24 hours once, ahead of the first visit (a daemon does it in the
        background at start: on a ledger of a million rows that read is most of a first render)."""
        try:
            self._per_minute(self.clock())
        except HarvesterError as exc:  # the first visit reads it then
            log.debug("the status page's chart was not read ahead: %s", exc)

    def overview(self) -> dict[str, Any]:
        now = self.clock()
        stats = self.ledger.stats()
        cycle = self.ledger.last_cycle()
        drawn = chart(self._per_minute(now), now)
        dead = self.ledger.rows(status="dead", limit=10)
        return {
            "now": iso_utc(now, "seconds"),
            "controller": self.ledger.controller,
            "live": self.live(),
            "last_cycle": None
            if cycle is None
            else {
                **asdict(cycle),
                "started_at": iso_utc(cycle.started_at, "seconds"),
                "finished_at": iso_utc(cycle.finished_at, "seconds"),
                "age": age(cycle.finished_at, now),
            },
            "counts": stats.counts,
            "held": stats.held,
            "oldest_pending_age": age(stats.pending_since, now) or None,
            "chart": {
                "delivered": drawn.delivered,
                "failed": drawn.failed,
                "peak_per_minute": drawn.peak,
                "start": iso_utc(drawn.start, "seconds"),
                "end": iso_utc(drawn.end, "seconds"),
                "delivered_path": drawn.delivered_path,
                "failed_path": drawn.failed_path,
                "hours": drawn.hours,
            },
            "dead": [_row(row, now) for row in dead],
        }

    def builds(self, status: str | None, after: str | None) -> dict[str, Any]:
        now = self.clock()
        rows = self.ledger.rows(status=status, after=after, limit=PAGE_SIZE)
        return self._page(rows, now, status=status)

    def held(self) -> dict[str, Any]:
        now = self.clock()
        return {"held": [_held(held, now) for held in self.ledger.held_builds()]}

    def job(self, name: str, after: str | None) -> dict[str, Any] | None:
        now = self.clock()
        summaries = self.ledger.job_summaries([name])
        rows = self.ledger.rows(jobs=[name], after=after, limit=PAGE_SIZE)
        if not summaries and not rows:
            return None
        summary = summaries[0] if summaries else None
        return {
            "job": name,
            "cursor": None if summary is None else summary.cursor,
            "cursor_moved_at": None
            if summary is None
            else iso_utc(summary.cursor_moved_at, "seconds"),
            "held": [] if summary is None else [_held(h, now) for h in summary.held],
            **self._page(rows, now),
        }

    def build(self, job: str, number: int) -> dict[str, Any] | None:
        now = self.clock()
        entry = self.ledger.entry(job, number)
        if entry is None:
            return None
        try:
            payload: Any = json.loads(entry.payload)
        except ValueError:
            payload = entry.payload  # stored as it was sent; shown as it is
        return {
            **_row(entry, now),
            # The plugin channel's logs and tests sent beside the payload (None: none).
            "files": None if entry.files_summary is None else json.loads(entry.files_summary),
            "payload": payload,
            "payload_text": json.dumps(payload, indent=2, ensure_ascii=False),
            "history": [a.as_json("seconds") for a in self.ledger.history(entry.id)],
        }

    def search(self, glob: str, number: int | None, after: str | None) -> dict[str, Any]:
        now = self.clock()
        known = self.ledger.job_names()
        names = [name for name in known if glob_match(glob or "**", name)]
        cut = len(names) > MAX_SEARCH_JOBS
        # Every job: no list to match (the rows' own order is the index's).
        jobs = None if len(names) == len(known) else names[:MAX_SEARCH_JOBS]
        rows = (
            self.ledger.rows(jobs=jobs, number=number, after=after, limit=PAGE_SIZE)
            if names
            else []
        )
        return {
            "query": {"job": glob, "build": number},
            "jobs_matched": len(names),
            "jobs_searched": len(names) if jobs is None else len(jobs),
            "cut": cut and jobs is not None,
            **self._page(rows, now),
        }

    @staticmethod
    def _page(rows: list[Row], now: datetime, status: str | None = None) -> dict[str, Any]:
        return {
            "status": status,
            "rows": [_row(row, now) for row in rows],
            # Where the next page starts; None on the last one.
            "next": rows[-1].key if len(rows) == PAGE_SIZE else None,
        }

    def _per_minute(self, now: datetime) -> dict[str, tuple[int, int]]:
        """The last 24 hours' counts: finished minutes are kept, so a render reads from a
        few minutes back (an attempt is written when its answer came: a minute late at most)."""
        current = now.replace(second=0, microsecond=0)
        window_start = current - timedelta(minutes=MINUTES - 1)
        with self._lock:
            read_until = self._read_until
        since = window_start
        if read_until is not None:
            since = max(window_start, read_until - timedelta(minutes=2))
        fresh = self.ledger.per_minute(since)  # no lock held across the database's answer
        oldest = window_start.strftime("%Y-%m-%d %H:%M")
        with self._lock:
            self._minutes.update(fresh)
            self._read_until = max(current, self._read_until or current)
            for key in [key for key in self._minutes if key < oldest]:
                del self._minutes[key]
            return dict(self._minutes)


__all__ = ["Views"]
