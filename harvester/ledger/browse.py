"""What the status page and ``ledger jobs`` read: pages of rows without their payloads, a job's
cursor and held numbers with the reasons, the last cycle, and deliveries per minute."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, get_args

from sqlalchemy import DateTime, case, func, literal, select, tuple_

from harvester.attempt import Outcome
from harvester.ledger.base import LedgerBase
from harvester.ledger.records import Row, utc
from harvester.ledger.schema import (
    BUILDS,
    BuildRow,
    CycleRow,
    DeliveryAttemptRow,
    HeldBuildRow,
    JobCursorRow,
)
from harvester.util.timeparse import iso_utc

# The row without its payload (in build_payloads): a table of 50 rows reads no payload.
_ROW = select(BUILDS)
_TIME = DateTime(timezone=True)
# What a chart's "failed" counts: every answer but a 2xx (operator notes are not answers).
_FAILED = tuple(outcome for outcome in get_args(Outcome) if outcome != "sent")


@dataclass(frozen=True, slots=True)
class Held:
    controller: str
    job: str
    number: int
    since: datetime
    reason: str | None

    @classmethod
    def from_row(cls, row: Any) -> Held:
        return cls(row.controller, row.job, row.number, utc(row.held_since), row.reason)  # type: ignore[arg-type]

    def as_json(self, timespec: str = "auto") -> dict[str, Any]:
        return {
            "controller": self.controller,
            "job": self.job,
            "number": self.number,
            "since": iso_utc(self.since, timespec),
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class JobSummary:
    controller: str
    job: str
    cursor: int | None
    cursor_moved_at: datetime | None
    held: tuple[Held, ...]
    last_collected_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Cycle:
    kind: str
    started_at: datetime
    finished_at: datetime
    succeeded: bool
    collected: int
    delivered: int
    failed: int
    jenkins_requests: int


def parse_key(key: str | None) -> tuple[datetime, int] | None:
    """A :attr:`Row.key` back, or None when there is none (or it is not one: the first page)."""
    if not key:
        return None
    stamp, _, row_id = key.partition(":")
    try:
        return datetime.fromtimestamp(float(stamp), tz=UTC), int(row_id)
    except (ValueError, OverflowError, OSError):
        return None


class Browsing(LedgerBase):
    def rows(
        self,
        *,
        status: str | None = None,
        jobs: list[str] | None = None,
        number: int | None = None,
        after: str | None = None,
        limit: int = 50,
    ) -> list[Row]:
        """Rows newest first (by start), ``limit`` of them after the row whose key is
        ``after``; filtered by status, by job names, by build number."""
        query = self._scoped(_ROW, BuildRow)
        if status is not None:
            query = query.where(BuildRow.status == status)
        if jobs is not None:
            query = query.where(BuildRow.job.in_(jobs))
        if number is not None:
            query = query.where(BuildRow.number == number)
        start = parse_key(after)
        if start is not None:
            moment, row_id = start
            # A row value: one range on the index, where an OR of two would scan it.
            query = query.where(
                tuple_(BuildRow.started_at, BuildRow.id) < tuple_(literal(moment, _TIME), row_id)
            )
        query = query.order_by(BuildRow.started_at.desc(), BuildRow.id.desc()).limit(limit)
        with self._read() as connection:
            return [Row.from_row(found) for found in connection.execute(query)]

    def held_builds(self, limit: int = 500) -> list[Held]:
        """The held builds, longest held first (``limit`` of them)."""
        query = self._scoped(select(HeldBuildRow), HeldBuildRow).order_by(
            HeldBuildRow.held_since, HeldBuildRow.job, HeldBuildRow.number
        )
        with self._read() as connection:
            return [Held.from_row(r) for r in connection.execute(query.limit(limit))]

    def job_names(self) -> list[str]:
        """Every job the ledger follows (it has a cursor or a held build), sorted."""
        with self._read() as connection:
            cursors = connection.execute(
                self._scoped(select(JobCursorRow.job), JobCursorRow).distinct()
            ).scalars()
            held = connection.execute(
                self._scoped(select(HeldBuildRow.job), HeldBuildRow).distinct()
            ).scalars()
            return sorted(set(cursors) | set(held))

    def job_summaries(
        self, jobs: list[str] | None = None, *, last_collected: bool = False
    ) -> list[JobSummary]:
        """Each job's cursor and held numbers (``jobs``, or every job); ``last_collected``: also
        when each last had a build collected (a scan of the rows: the CLI's, not the page's)."""
        with self._read() as connection:
            query = self._scoped(select(JobCursorRow), JobCursorRow)
            if jobs is not None:
                query = query.where(JobCursorRow.job.in_(jobs))
            cursors = {(r.controller, r.job): r for r in connection.execute(query)}
            held_query = self._scoped(select(HeldBuildRow), HeldBuildRow)
            if jobs is not None:
                held_query = held_query.where(HeldBuildRow.job.in_(jobs))
            held: dict[tuple[str, str], list[Held]] = {}
            for r in connection.execute(held_query.order_by(HeldBuildRow.number)):
                held.setdefault((r.controller, r.job), []).append(Held.from_row(r))
            collected: dict[tuple[str, str], datetime | None] = {}
            if last_collected:
                latest = self._scoped(
                    select(BuildRow.controller, BuildRow.job, func.max(BuildRow.collected_at)),
                    BuildRow,
                ).group_by(BuildRow.controller, BuildRow.job)
                if jobs is not None:
                    latest = latest.where(BuildRow.job.in_(jobs))
                collected = {(c, j): utc(at) for c, j, at in connection.execute(latest)}
        summaries = []
        for key in sorted(set(cursors) | set(held) | set(collected), key=lambda k: (k[1], k[0])):
            cursor = cursors.get(key)
            summaries.append(
                JobSummary(
                    controller=key[0],
                    job=key[1],
                    cursor=None if cursor is None else cursor.last_number,
                    cursor_moved_at=None if cursor is None else utc(cursor.updated_at),
                    held=tuple(held.get(key, ())),
                    last_collected_at=collected.get(key),
                )
            )
        return summaries

    def last_cycle(self) -> Cycle | None:
        with self._read() as connection:
            row = connection.execute(
                self._scoped(select(CycleRow), CycleRow)
                .where(CycleRow.kind != "check")
                .order_by(CycleRow.finished_at.desc())
                .limit(1)
            ).one_or_none()
        if row is None:
            return None
        return Cycle(
            kind=row.kind,
            started_at=utc(row.started_at),  # type: ignore[arg-type]
            finished_at=utc(row.finished_at),  # type: ignore[arg-type]
            succeeded=bool(row.succeeded),
            collected=row.collected,
            delivered=row.delivered,
            failed=row.failed,
            jenkins_requests=int(row.jenkins_requests),
        )

    def per_minute(self, since: datetime) -> dict[str, tuple[int, int]]:
        """Deliveries and failed attempts per UTC minute (``YYYY-MM-DD HH:MM``) from ``since``."""
        minute = self._dialect.minute(DeliveryAttemptRow.attempted_at).label("minute")
        query: Any = (
            select(
                minute,
                func.sum(case((DeliveryAttemptRow.outcome == "sent", 1), else_=0)),
                func.sum(case((DeliveryAttemptRow.outcome.in_(_FAILED), 1), else_=0)),
            )
            .where(DeliveryAttemptRow.attempted_at >= since)
            .group_by(minute)
        )
        if self.controller is not None:
            query = query.join_from(
                DeliveryAttemptRow, BuildRow, BuildRow.id == DeliveryAttemptRow.build_id
            ).where(BuildRow.controller == self.controller)
        with self._read() as connection:
            return {
                m: (int(sent or 0), int(failed or 0))
                for m, sent, failed in connection.execute(query)
            }
