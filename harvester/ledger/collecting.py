"""The collecting half of the ledger: rows written as ``pending`` (or ``skipped``), each job's
cursor, and the numbers it holds back."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select

from harvester.ledger.base import LedgerBase
from harvester.ledger.records import NewBuild, utc
from harvester.ledger.schema import (
    BUILDS,
    JOB_CURSORS,
    BuildRow,
    ForgottenBuildRow,
    HeldBuildRow,
    JobCursorRow,
)
from harvester.ledger.statements import (
    INSERT_ATTEMPT,
    INSERT_FILES,
    INSERT_PAYLOAD,
    operator_note,
)
from harvester.util.timeparse import to_epoch_ms


class Collecting(LedgerBase):
    def cursors(self) -> dict[str, int]:
        with self._read() as connection:
            rows = connection.execute(
                self._scoped(select(JobCursorRow.job, JobCursorRow.last_number), JobCursorRow)
            ).all()
            return {row.job: row.last_number for row in rows}

    def held(self) -> dict[str, set[int]]:
        """Every job's held numbers: builds re-checked one by one each cycle."""
        found: dict[str, set[int]] = {}
        with self._read() as connection:
            for job, number in connection.execute(
                self._scoped(select(HeldBuildRow.job, HeldBuildRow.number), HeldBuildRow)
            ):
                found.setdefault(job, set()).add(number)
        return found

    def known(self, job: str, above: int) -> dict[int, set[int]]:
        """The builds of ``job`` numbered above ``above`` that the ledger holds: number → the
        start times (epoch ms) recorded under it (two when a re-created job reused it)."""
        found: dict[int, set[int]] = {}
        with self._read() as connection:
            rows = connection.execute(
                self._scoped(select(BuildRow.number, BuildRow.started_at), BuildRow).where(
                    BuildRow.job == job, BuildRow.number > above
                )
            )
            for number, started_at in rows:
                found.setdefault(number, set()).add(to_epoch_ms(utc(started_at)))  # type: ignore[arg-type]
        return found

    def add_pending(
        self,
        builds: Sequence[NewBuild],
        *,
        now: datetime,
        cursor: tuple[str, int] | None = None,
        hold: Iterable[tuple[str, int, str]] = (),
        unhold: Iterable[tuple[str, int]] = (),
    ) -> int:
        """Write collected builds as ``pending`` (or ``skipped``), ignoring ones already
        recorded; hold back numbers (job, number, why) and release them; and move the job's
        cursor forward, all in one
        transaction: the cursor never passes a build that is not safely stored or held. Returns
        how many rows were new (``pending`` ones)."""
        hold, unhold = list(hold), list(unhold)
        inserted = 0
        me = self._me
        with self._fenced_write() as connection:
            if builds:
                inserted = self._insert(connection, builds, now)
            if unhold:
                for job, number in unhold:
                    connection.execute(
                        delete(HeldBuildRow).where(
                            HeldBuildRow.controller == me,
                            HeldBuildRow.job == job,
                            HeldBuildRow.number == number,
                        )
                    )
            if hold:
                statement = self._dialect.insert(HeldBuildRow)
                connection.execute(
                    # Held again: since when stays, why is the latest reason.
                    statement.on_conflict_do_update(
                        index_elements=["controller", "job", "number"],
                        set_={"reason": statement.excluded.reason},
                    ),
                    [
                        {
                            "controller": me,
                            "job": job,
                            "number": number,
                            "held_since": now,
                            "reason": reason,
                        }
                        for job, number, reason in hold
                    ],
                )
            if cursor is not None:
                connection.execute(self._advance_cursor(), _cursor_values(me, cursor, now))
        return inserted

    def _insert(self, connection: Connection, builds: Sequence[NewBuild], now: datetime) -> int:
        """The builds, then the payloads of those that were new, through SQLAlchemy: one
        multi-row statement each (a round trip each over a network, not one per build). Returns
        how many were new and pending."""
        me = self._me
        by_key = {(b.job, b.number): b for b in builds}
        if len(by_key) < len(builds):  # the same number twice: RETURNING cannot tell them apart
            return sum(self._insert(connection, [b], now) for b in builds)
        # RETURNING says what was new; executemany rowcounts differ between drivers.
        rows = connection.execute(
            self._insert_builds().returning(BUILDS.c.id, BUILDS.c.job, BUILDS.c.number),
            [_build_values(me, b, now) for b in builds],
        ).all()
        if not rows:
            return 0
        new = [by_key[(row.job, row.number)] for row in rows]
        connection.execute(
            INSERT_PAYLOAD,
            [{"build_id": row.id, "payload": b.payload} for row, b in zip(rows, new, strict=True)],
        )
        files = [
            {"build_id": row.id, "data": b.files, "summary": b.files_summary}
            for row, b in zip(rows, new, strict=True)
            if b.files_summary is not None
        ]
        if files:
            connection.execute(INSERT_FILES, files)
        self._carry_forgotten(connection, rows)
        return sum(1 for b in new if b.skipped is None)

    def _carry_forgotten(self, connection: Connection, rows: Sequence[Any]) -> None:
        """A build collected again after ``ledger forget``: its new history starts with the
        forget, so that an operator's change stays visible in the row."""
        me = self._me
        by_key = {(row.job, row.number): row.id for row in rows}
        notes = connection.execute(
            select(ForgottenBuildRow).where(
                ForgottenBuildRow.controller == me,
                ForgottenBuildRow.job.in_({job for job, _ in by_key}),
                ForgottenBuildRow.number.in_({number for _, number in by_key}),
            )
        ).all()
        notes = [note for note in notes if (note.job, note.number) in by_key]
        if not notes:
            return
        connection.execute(
            INSERT_ATTEMPT,
            [
                operator_note(by_key[(note.job, note.number)], utc(note.forgotten_at), note.note)
                for note in notes
            ],
        )
        for note in notes:
            connection.execute(
                delete(ForgottenBuildRow).where(
                    ForgottenBuildRow.controller == me,
                    ForgottenBuildRow.job == note.job,
                    ForgottenBuildRow.number == note.number,
                )
            )

    def _insert_builds(self) -> Any:
        """Builds as collected; one already recorded (same start time) is left as it is."""
        return self._dialect.insert(BUILDS).on_conflict_do_nothing(
            index_elements=["controller", "job", "number", "started_at"]
        )

    def _advance_cursor(self) -> Any:
        """The job's cursor set to ``last_number``, or kept where it is if that is further."""
        statement = self._dialect.insert(JOB_CURSORS)
        excluded = statement.excluded
        return statement.on_conflict_do_update(
            index_elements=["controller", "job"],
            # Never backwards: a late or concurrent writer must not re-open settled builds.
            set_={
                "last_number": self._dialect.greatest(
                    JOB_CURSORS.c.last_number, excluded.last_number
                ),
                "updated_at": excluded.updated_at,
            },
        )

    def restart_job(self, job: str) -> None:
        """A job deleted and re-created under the same name starts again at #1: its cursor and
        held numbers belonged to the old job (the one place a cursor moves backwards on its own;
        the rows stay, and numbers the new job reuses are recorded ``skipped``)."""
        with self._fenced_write() as connection:
            connection.execute(
                delete(JobCursorRow).where(
                    JobCursorRow.controller == self._me, JobCursorRow.job == job
                )
            )
            connection.execute(
                delete(HeldBuildRow).where(
                    HeldBuildRow.controller == self._me, HeldBuildRow.job == job
                )
            )


def _build_values(controller: str, build: NewBuild, now: datetime) -> dict[str, Any]:
    return {
        "controller": controller,
        "job": build.job,
        "number": build.number,
        "status": "pending" if build.skipped is None else "skipped",
        "result": build.result,
        "attempts": 0,
        "next_attempt_at": now,
        "started_at": build.started_at,
        "collected_at": now,
        "last_error": build.skipped,
    }


def _cursor_values(controller: str, cursor: tuple[str, int], now: datetime) -> dict[str, Any]:
    return {"controller": controller, "job": cursor[0], "last_number": cursor[1], "updated_at": now}
