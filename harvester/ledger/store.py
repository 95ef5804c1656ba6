"""The sent-builds ledger (CONTRACT §5) on SQLAlchemy 2: SQLite by default, PostgreSQL when shared.

It is an outbox: a build's payload is written as ``pending`` before the first delivery attempt and
marked ``sent`` only after a 2xx, so a crash loses nothing. Everything that differs between SQLite
and PostgreSQL is in :mod:`harvester.ledger.dialects`; the tables are in
:mod:`harvester.ledger.schema`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from harvester.attempt import Attempt
from harvester.errors import LedgerError
from harvester.ledger import migrate as migrations
from harvester.ledger.dialects import Dialect, open_engine
from harvester.ledger.records import (
    STATUSES,
    DeliveryAttempt,
    LedgerEntry,
    LedgerStats,
    NewBuild,
    utc,
)
from harvester.ledger.schema import (
    BuildRow,
    CycleRow,
    DeliveryAttemptRow,
    JobCursorRow,
)
from harvester.ledger.statements import (
    CLAIM_SELECT,
    CLAIM_UPDATE,
    INSERT_ATTEMPT,
    RECORD_ATTEMPT,
    SELECT_ATTEMPTS,
)
from harvester.util.names import glob_match

# A claimed row is not handed to another worker or replica for this long; if the process dies with
# the row claimed, it becomes due again afterwards (at worst sent twice, never lost).
CLAIM_LEASE = timedelta(minutes=5)


class Ledger:
    """All reads and writes of the ledger. Thread-safe: each call uses its own connection."""

    def __init__(self, engine: Engine, dialect: Dialect) -> None:
        self._engine = engine
        self._dialect = dialect
        self._claim_select = dialect.claim(CLAIM_SELECT)
        self._select_attempts = dialect.lock_row(SELECT_ATTEMPTS)

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Ledger:
        ledger = cls(*open_engine(url))
        if migrate:
            ledger.upgrade()
        return ledger

    def close(self) -> None:
        self._engine.dispose()

    # -- schema -------------------------------------------------------------------------------

    def upgrade(self, revision: str = "head") -> None:
        migrations.upgrade(self._engine, revision)

    def downgrade(self, revision: str = "base") -> None:
        migrations.downgrade(self._engine, revision)

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with (
            self._engine.connect().execution_options(harvester_readonly=True) as connection,
            connection.begin(),
        ):
            yield connection

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._engine.begin() as connection:
            yield connection

    # -- collecting ---------------------------------------------------------------------------

    def cursors(self) -> dict[str, int]:
        with self._read() as connection:
            rows = connection.execute(select(JobCursorRow.job, JobCursorRow.last_number)).all()
            return {row.job: row.last_number for row in rows}

    def numbers_above(self, job: str, number: int) -> set[int]:
        """Build numbers of ``job`` above ``number`` that the ledger already holds."""
        with self._read() as connection:
            rows = connection.execute(
                select(BuildRow.number).where(BuildRow.job == job, BuildRow.number > number)
            )
            return {n for (n,) in rows}

    def numbers_between(self, job: str, low: int, high: int) -> set[int]:
        with self._read() as connection:
            rows = connection.execute(
                select(BuildRow.number).where(
                    BuildRow.job == job, BuildRow.number >= low, BuildRow.number <= high
                )
            )
            return {n for (n,) in rows}

    def add_pending(
        self, builds: Sequence[NewBuild], *, now: datetime, cursor: tuple[str, int] | None = None
    ) -> int:
        """Write collected builds as ``pending`` (ignoring ones already held) and, in the same
        transaction, move the job's cursor forward: the cursor never passes a build that is not
        safely stored. Returns how many rows were new."""
        inserted = 0
        with self._write() as connection:
            if builds:
                # RETURNING counts what was new; executemany rowcounts differ between drivers.
                statement = (
                    self._dialect.insert(BuildRow)
                    .on_conflict_do_nothing(index_elements=["job", "number"])
                    .returning(BuildRow.id)
                )
                values = [
                    {
                        "job": b.job,
                        "number": b.number,
                        "status": "pending",
                        "result": b.result,
                        "payload": b.payload,
                        "attempts": 0,
                        "next_attempt_at": now,
                        "started_at": b.started_at,
                        "collected_at": now,
                    }
                    for b in builds
                ]
                inserted = len(connection.execute(statement, values).all())
            if cursor is not None:
                self._advance_cursor(connection, cursor[0], cursor[1], now)
        return inserted

    def _advance_cursor(self, connection: Connection, job: str, number: int, now: datetime) -> None:
        statement = self._dialect.insert(JobCursorRow).values(
            job=job, last_number=number, updated_at=now
        )
        excluded = statement.excluded
        statement = statement.on_conflict_do_update(
            index_elements=["job"],
            # Never backwards: a late or concurrent writer must not re-open settled builds.
            set_={
                "last_number": self._dialect.greatest(
                    JobCursorRow.last_number, excluded.last_number
                ),
                "updated_at": excluded.updated_at,
            },
        )
        connection.execute(statement)

    # -- delivering ---------------------------------------------------------------------------

    def claim_due(self, now: datetime, limit: int, owner: str) -> list[LedgerEntry]:
        """Pending rows whose next attempt is due, oldest build first, leased to ``owner`` so
        that no other worker or replica sends them meanwhile."""
        with self._write() as connection:
            rows = connection.execute(self._claim_select, {"now": now, "limit": limit}).all()
            if rows:
                connection.execute(
                    CLAIM_UPDATE,
                    {"ids": [row.id for row in rows], "until": now + CLAIM_LEASE, "owner": owner},
                )
            return [LedgerEntry.from_row(row) for row in rows]

    def renew(self, ids: Sequence[int], owner: str, now: datetime) -> set[int]:
        """Extend ``owner``'s claims on ``ids``; returns the ids it still holds (a claim that
        expired and was taken by another worker is lost: that worker sends the row)."""
        if not ids:
            return set()
        with self._write() as connection:
            rows = connection.execute(
                update(BuildRow)
                .where(
                    BuildRow.id.in_(list(ids)),
                    BuildRow.claimed_by == owner,
                    BuildRow.status == "pending",
                )
                .values(claimed_until=now + CLAIM_LEASE)
                .returning(BuildRow.id)
            ).all()
        return {row.id for row in rows}

    def release(
        self, ids: Sequence[int], owner: str, next_attempt_at: datetime | None = None
    ) -> None:
        """Hand back ``owner``'s claims on rows it did not finish (delivery stopped)."""
        if not ids:
            return
        values: dict[str, Any] = {"claimed_until": None, "claimed_by": None}
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        with self._write() as connection:
            connection.execute(
                update(BuildRow)
                .where(
                    BuildRow.id.in_(list(ids)),
                    BuildRow.status == "pending",
                    BuildRow.claimed_by == owner,
                )
                .values(**values)
            )

    def refund_attempts(self, ids: Sequence[int], now: datetime) -> None:
        """Hand back one counted attempt of each row: its failure turned out to be the onset of
        an outage, which spends no attempts (CONTRACT §7). A row that died of that attempt is
        pending again."""
        if not ids:
            return
        with self._write() as connection:
            connection.execute(
                update(BuildRow)
                .where(
                    BuildRow.id.in_(list(ids)),
                    BuildRow.attempts > 0,
                    BuildRow.status.in_(("pending", "dead")),
                )
                .values(attempts=BuildRow.attempts - 1, status="pending")
            )

    def release_dead_claims(self, owner_alive: Callable[[str], bool], now: datetime) -> int:
        """Release the claims of owners that ``owner_alive`` says are gone (a process killed
        mid-delivery), so their rows need not wait out the lease. Live owners keep theirs: a
        catch-up started beside the daemon must not re-send the daemon's rows in flight."""
        with self._write() as connection:
            owners = connection.execute(
                select(BuildRow.claimed_by)
                .where(BuildRow.claimed_by.is_not(None), BuildRow.claimed_until > now)
                .distinct()
            ).scalars()
            dead = [owner for owner in owners if owner is not None and not owner_alive(owner)]
            if not dead:
                return 0
            result = connection.execute(
                update(BuildRow)
                .where(BuildRow.claimed_by.in_(dead))
                .values(claimed_until=None, claimed_by=None)
            )
            return result.rowcount or 0

    def record_attempt(
        self,
        entry_id: int,
        outcome: Attempt,
        *,
        now: datetime,
        max_attempts: int,
        owner: str,
        keep_claim: bool = False,
    ) -> str:
        """Write one delivery attempt and its effect on the row; returns the row's new status,
        or ``lost`` when ``owner`` no longer holds the row (its claim expired and another worker
        took it, or it was forgotten): then nothing is written, and that worker decides.

        ``sent`` and ``dead`` are final. A ``retry`` counts toward ``max_attempts`` when
        ``outcome.counted`` (the receiver was accepting other builds), and is ``dead`` once they
        are spent. ``throttled``, ``credentials`` and ``url`` never count. With ``keep_claim``
        the worker goes on retrying the row in this cycle and its claim is renewed."""
        with self._write() as connection:
            row = connection.execute(self._select_attempts, {"row_id": entry_id}).one_or_none()
            if row is None or row.claimed_by != owner:
                return "lost"
            kind = outcome.outcome
            counted = kind in ("sent", "dead") or (kind == "retry" and outcome.counted)
            attempts = row.attempts + (1 if counted else 0)
            error = outcome.error
            next_attempt_at = None
            sent_at = None
            if kind == "sent":
                status, error, sent_at = "sent", None, now
            elif kind == "dead" or (kind == "retry" and attempts >= max_attempts):
                status = "dead"
                if kind != "dead":
                    error = f"gave up after {attempts} attempts; last: {outcome.error}"
            else:
                status = "pending"
                next_attempt_at = outcome.next_attempt_at or now
            keep = keep_claim and status == "pending"
            connection.execute(
                RECORD_ATTEMPT,
                {
                    "row_id": entry_id,
                    "new_status": status,
                    "new_attempts": attempts,
                    "http_status": outcome.http_status,
                    "error": error,
                    "next_at": next_attempt_at,
                    "sent": sent_at,
                    "body": outcome.body,
                    "lease_until": now + CLAIM_LEASE if keep else None,
                    "lease_owner": owner if keep else None,
                },
            )
            connection.execute(
                INSERT_ATTEMPT,
                {
                    "build_id": entry_id,
                    "attempted_at": now,
                    "outcome": "dead" if status == "dead" else kind,
                    "http_status": outcome.http_status,
                    "error": outcome.error,
                    "duration_ms": outcome.duration_ms,
                },
            )
            return status

    # -- inspection and repair (the `ledger` commands) ----------------------------------------

    def entries(
        self,
        *,
        status: str | None = None,
        job_glob: str | None = None,
        limit: int | None = None,
    ) -> list[LedgerEntry]:
        """Rows newest first (by build start), filtered."""
        query = select(BuildRow).order_by(BuildRow.started_at.desc(), BuildRow.id.desc())
        if status is not None:
            query = query.where(BuildRow.status == status)
        found: list[LedgerEntry] = []
        with self._read() as connection:
            for row in connection.execute(query.execution_options(yield_per=500)):
                if job_glob is not None and not glob_match(job_glob, row.job):
                    continue
                found.append(LedgerEntry.from_row(row))
                if limit is not None and len(found) >= limit:
                    break
        return found

    def jobs(self) -> set[str]:
        with self._read() as connection:
            return set(connection.execute(select(BuildRow.job).distinct()).scalars())

    def entry(self, job: str, number: int) -> LedgerEntry | None:
        with self._read() as connection:
            row = connection.execute(
                select(BuildRow).where(BuildRow.job == job, BuildRow.number == number)
            ).one_or_none()
            return None if row is None else LedgerEntry.from_row(row)

    def history(self, entry_id: int) -> list[DeliveryAttempt]:
        with self._read() as connection:
            rows = connection.execute(
                select(DeliveryAttemptRow)
                .where(DeliveryAttemptRow.build_id == entry_id)
                .order_by(DeliveryAttemptRow.id)
            ).all()
        return [
            DeliveryAttempt(
                attempted_at=utc(r.attempted_at),  # type: ignore[arg-type]
                outcome=r.outcome,
                http_status=r.http_status,
                error=r.error,
                duration_ms=r.duration_ms,
            )
            for r in rows
        ]

    def retry(self, ids: Sequence[int], now: datetime) -> int:
        """Set ``dead`` rows back to ``pending``, due now, with a fresh attempt budget."""
        if not ids:
            return 0
        with self._write() as connection:
            result = connection.execute(
                update(BuildRow)
                .where(BuildRow.id.in_(list(ids)), BuildRow.status == "dead")
                .values(status="pending", attempts=0, next_attempt_at=now)
            )
            return result.rowcount or 0

    def make_due(self, ids: Sequence[int] | None, now: datetime) -> int:
        """Make ``pending`` rows (``ids``, or all of them) due now, skipping their backoff: the
        first cycle of a process, and ``ledger retry --pending``."""
        if ids is not None and not ids:
            return 0
        statement = update(BuildRow).where(
            BuildRow.status == "pending", BuildRow.next_attempt_at > now
        )
        if ids is not None:
            statement = statement.where(BuildRow.id.in_(list(ids)))
        with self._write() as connection:
            result = connection.execute(statement.values(next_attempt_at=now))
            return result.rowcount or 0

    def probe_write(self, now: datetime) -> None:
        """Prove the ledger can be written, storing nothing: a row is written and rolled back
        (``check``). Raises LedgerError when it cannot."""
        try:
            with self._engine.connect() as connection:
                transaction = connection.begin()
                try:
                    connection.execute(
                        self._dialect.insert(CycleRow).values(
                            kind="check",
                            started_at=now,
                            finished_at=now,
                            succeeded=False,
                            collected=0,
                            delivered=0,
                            failed=0,
                            jenkins_requests=0,
                        )
                    )
                finally:
                    transaction.rollback()
        except SQLAlchemyError as exc:
            raise LedgerError(
                f"ledger.url: the ledger cannot be written ({_reason(exc)})",
                hint="check that the database (or the SQLite file and its directory) is "
                "writable by this user",
            ) from None

    def forget(self, job: str, number: int, now: datetime) -> bool:
        """Delete a row and move the job's cursor back below it, so the next cycle collects the
        build again (the only place a cursor moves backwards, on the user's explicit request)."""
        with self._write() as connection:
            deleted = connection.execute(
                delete(BuildRow).where(BuildRow.job == job, BuildRow.number == number)
            ).rowcount
            connection.execute(
                update(JobCursorRow)
                .where(JobCursorRow.job == job, JobCursorRow.last_number >= number)
                .values(last_number=number - 1, updated_at=now)
            )
            return bool(deleted)

    def stats(self) -> LedgerStats:
        with self._read() as connection:
            counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
            for status, count in connection.execute(
                select(BuildRow.status, func.count()).group_by(BuildRow.status)
            ):
                counts[status] = count
            oldest = connection.execute(
                select(func.min(BuildRow.started_at)).where(BuildRow.status == "pending")
            ).scalar_one_or_none()
            last_cycle = connection.execute(
                select(func.max(CycleRow.finished_at)).where(CycleRow.succeeded.is_(True))
            ).scalar_one_or_none()
        return LedgerStats(counts, utc(oldest), utc(last_cycle))

    def pending_count(self) -> int:
        with self._read() as connection:
            return connection.execute(
                select(func.count()).select_from(BuildRow).where(BuildRow.status == "pending")
            ).scalar_one()

    def record_cycle(
        self,
        *,
        kind: str,
        started_at: datetime,
        finished_at: datetime,
        succeeded: bool,
        collected: int,
        delivered: int,
        failed: int,
        jenkins_requests: int,
    ) -> None:
        with self._write() as connection:
            connection.execute(
                self._dialect.insert(CycleRow).values(
                    kind=kind,
                    started_at=started_at,
                    finished_at=finished_at,
                    succeeded=succeeded,
                    collected=collected,
                    delivered=delivered,
                    failed=failed,
                    jenkins_requests=jenkins_requests,
                )
            )


def _reason(exc: SQLAlchemyError) -> str:
    text = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    return text if len(text) < 200 else text[:200] + "..."
