"""The collecting half of the ledger: rows written as ``pending`` (or ``skipped``), each job's
cursor, and the numbers it holds back (CONTRACT §5)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Connection, delete, select

from harvester.ledger.base import LedgerBase, _unavailable_as_error
from harvester.ledger.records import NewBuild, utc
from harvester.ledger.schema import BuildRow, HeldBuildRow, JobCursorRow
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

    def job_state(self, job: str) -> tuple[int | None, set[int]]:
        """``job``'s cursor and held numbers as they are now (another replica may have moved them
        since the cycle began)."""
        with self._read() as connection:
            cursor = connection.execute(
                select(JobCursorRow.last_number).where(
                    JobCursorRow.controller == self._me, JobCursorRow.job == job
                )
            ).scalar_one_or_none()
            held = connection.execute(
                select(HeldBuildRow.number).where(
                    HeldBuildRow.controller == self._me, HeldBuildRow.job == job
                )
            ).scalars()
            return cursor, set(held)

    @contextmanager
    def job_lease(self, job: str) -> Iterator[bool]:
        """Whether this process may collect ``job`` now: False while another replica of its
        controller collects it (a replica that joined mid-cycle may take a job the others
        already started)."""
        digest = hashlib.blake2b(f"{self._me}\0{job}".encode(), digest_size=8).digest()
        with (
            _unavailable_as_error(),
            self._dialect.try_lock(
                self._engine, int.from_bytes(digest, "big", signed=True)
            ) as leased,
        ):
            yield leased

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
        hold: Iterable[tuple[str, int]] = (),
        unhold: Iterable[tuple[str, int]] = (),
    ) -> int:
        """Write collected builds as ``pending`` (or ``skipped``), ignoring ones already
        recorded; hold back and release numbers; and move the job's cursor forward, all in one
        transaction: the cursor never passes a build that is not safely stored or held. Returns
        how many rows were new (``pending`` ones)."""
        inserted = 0
        me = self._me
        hold, unhold = list(hold), list(unhold)
        with self._write() as connection:
            if builds:
                # RETURNING counts what was new; executemany rowcounts differ between drivers.
                statement = (
                    self._dialect.insert(BuildRow)
                    .on_conflict_do_nothing(
                        index_elements=["controller", "job", "number", "started_at"]
                    )
                    .returning(BuildRow.id, BuildRow.status)
                )
                values = [
                    {
                        "controller": me,
                        "job": b.job,
                        "number": b.number,
                        "status": "pending" if b.skipped is None else "skipped",
                        "result": b.result,
                        "payload": b.payload,
                        "attempts": 0,
                        "next_attempt_at": now,
                        "started_at": b.started_at,
                        "collected_at": now,
                        "last_error": b.skipped,
                    }
                    for b in builds
                ]
                rows = connection.execute(statement, values).all()
                inserted = sum(1 for row in rows if row.status == "pending")
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
                connection.execute(
                    self._dialect.insert(HeldBuildRow).on_conflict_do_nothing(
                        index_elements=["controller", "job", "number"]
                    ),
                    [
                        {"controller": me, "job": job, "number": number, "held_since": now}
                        for job, number in hold
                    ],
                )
            if cursor is not None:
                self._advance_cursor(connection, cursor[0], cursor[1], now)
        return inserted

    def _advance_cursor(self, connection: Connection, job: str, number: int, now: datetime) -> None:
        statement = self._dialect.insert(JobCursorRow).values(
            controller=self._me, job=job, last_number=number, updated_at=now
        )
        excluded = statement.excluded
        statement = statement.on_conflict_do_update(
            index_elements=["controller", "job"],
            # Never backwards: a late or concurrent writer must not re-open settled builds.
            set_={
                "last_number": self._dialect.greatest(
                    JobCursorRow.last_number, excluded.last_number
                ),
                "updated_at": excluded.updated_at,
            },
        )
        connection.execute(statement)

    def restart_job(self, job: str) -> None:
        """A job deleted and re-created under the same name starts again at #1: its cursor and
        held numbers belonged to the old job (the one place a cursor moves backwards on its own;
        the rows stay, and numbers the new job reuses are recorded ``skipped``)."""
        with self._write() as connection:
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
