"""The sent-builds ledger on SQLAlchemy 2: SQLite by default, PostgreSQL when shared.

It is an outbox: a build's payload is written as ``pending`` before the first delivery attempt and
marked ``sent`` only after a 2xx, so a crash loses nothing. :class:`Ledger` is the collecting half
(:mod:`.collecting`), the delivering half (:mod:`.delivering`) and, here, what the ``ledger``
commands read and repair. Everything that differs between SQLite and PostgreSQL is in
:mod:`.dialects`; the tables are in :mod:`.schema`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError

from harvester.errors import LedgerError
from harvester.ledger import migrate as migrations
from harvester.ledger.browse import Browsing
from harvester.ledger.collecting import Collecting
from harvester.ledger.delivering import Delivering
from harvester.ledger.dialects import Sqlite, database_reason, dialect_of, open_engine
from harvester.ledger.records import (
    STATUSES,
    DeliveryAttempt,
    LedgerEntry,
    LedgerStats,
    utc,
)
from harvester.ledger.replicas import Replicas
from harvester.ledger.schema import (
    BuildRow,
    CycleRow,
    DeliveryAttemptRow,
    ForgottenBuildRow,
    HeldBuildRow,
    JobCursorRow,
    NoteRow,
)
from harvester.ledger.statements import ENTRIES, INSERT_ATTEMPT, operator_note
from harvester.util.names import glob_match
from harvester.util.timeparse import iso_utc


class Ledger(Collecting, Delivering, Replicas, Browsing):
    """All reads and writes of the ledger. Thread-safe: each call uses its own connection.

    ``controller`` (``jenkins.name``) scopes every query to one controller's rows;
    None, for the ``ledger`` commands, reads every controller's."""

    @classmethod
    def open(
        cls,
        url: str,
        *,
        controller: str | None = None,
        migrate: bool = True,
        connections: int = 10,
        password: str | None = None,
    ) -> Ledger:
        """``connections``: how many threads of this process use the ledger at once;
        ``password``: PostgreSQL's, when ``url`` has none (ledger.password_file)."""
        ledger = cls(*open_engine(url, connections, password), controller)
        if migrate:
            ledger.upgrade()
        return ledger

    def adopt(self) -> int:
        """Give this controller the rows written before the ledger knew controllers (a 0.1
        ledger's, keyed ``''`` by migration 0005): the first process that opens an upgraded
        ledger with a controller takes them, so nothing is collected or sent again. Returns
        how many builds it adopted."""
        me = self._me
        with self._write() as connection:
            adopted = 0
            for table in (BuildRow, JobCursorRow, HeldBuildRow, NoteRow, CycleRow):
                result = connection.execute(
                    update(table).where(table.controller == "").values(controller=me)
                )
                if table is BuildRow:
                    adopted = result.rowcount or 0
            return adopted

    def controllers(self) -> list[str]:
        """The controllers that have rows in the ledger."""
        with self._read() as connection:
            return sorted(connection.execute(select(BuildRow.controller).distinct()).scalars())

    @staticmethod
    def not_created_yet(url: str) -> str | None:
        """A SQLite ledger whose file does not exist yet: where it will be, after checking that
        its directory can take it (LedgerError if not). None: the ledger is there (or is not a
        file), and can be opened. ``check`` proves a new ledger this way, creating nothing."""
        dialect = dialect_of(url)
        if dialect.exists(url) or not isinstance(dialect, Sqlite):
            return None
        path = dialect.where(url)
        if path is None:
            return None
        directory = path.absolute().parent
        if not directory.is_dir():
            raise LedgerError(
                f"ledger.url: the directory {directory} does not exist",
                hint="create it, or point ledger.url at a directory that does",
            )
        if not os.access(directory, os.W_OK | os.X_OK):
            raise LedgerError(
                f"ledger.url: the directory {directory} is not writable by this user",
                hint="make it writable, or point ledger.url elsewhere",
            )
        return str(path.absolute())

    @classmethod
    def open_to_read(
        cls, url: str, *, controller: str | None = None, password: str | None = None
    ) -> Ledger | None:
        """The ledger as it is, for a run that writes nothing (``catch-up --dry-run``): None when
        there is none yet (nothing is created), an error when its schema is older than this
        harvester (migrating would be a write)."""
        if not dialect_of(url).exists(url):
            return None
        ledger = cls(*open_engine(url, password=password), controller)
        current = migrations.is_current(ledger._engine)
        if current:
            return ledger
        ledger.close()
        if current is None:
            return None
        raise LedgerError(
            "ledger.url: the ledger's schema is older than this harvester",
            hint="run `harvester db upgrade` first (a dry run writes nothing, migrations included)",
        )

    # -- inspection and repair (the `ledger` commands) ----------------------------------------

    def entries(
        self,
        *,
        status: str | None = None,
        job_glob: str | None = None,
        limit: int | None = None,
    ) -> list[LedgerEntry]:
        """Rows newest first (by build start), filtered."""
        query = self._scoped(
            ENTRIES.order_by(BuildRow.started_at.desc(), BuildRow.id.desc()), BuildRow
        )
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

    def ids(self, status: str, job_glob: str | None = None) -> list[int]:
        """The ids of the rows with ``status`` (of the jobs ``job_glob`` matches): what
        ``ledger retry --dead`` and the status page's "retry every dead build" act on, read
        without their payloads."""
        query = self._scoped(select(BuildRow.id, BuildRow.job), BuildRow).where(
            BuildRow.status == status
        )
        with self._read() as connection:
            return [
                row_id
                for row_id, job in connection.execute(query)
                if job_glob is None or glob_match(job_glob, job)
            ]

    def jobs(self) -> set[str]:
        with self._read() as connection:
            return set(
                connection.execute(
                    self._scoped(select(BuildRow.job), BuildRow).distinct()
                ).scalars()
            )

    def entry(self, job: str, number: int) -> LedgerEntry | None:
        """The row of ``job`` #``number``; the newest by start time when a re-created job reused
        the number (the other is the old job's build). Without a controller, a build that two
        controllers both have is an error naming them."""
        with self._read() as connection:
            rows = connection.execute(
                self._scoped(ENTRIES, BuildRow)
                .where(BuildRow.job == job, BuildRow.number == number)
                .order_by(BuildRow.started_at.desc())
            ).all()
        controllers = sorted({row.controller for row in rows})
        if len(controllers) > 1:
            raise LedgerError(
                f"{job} #{number} is in the ledger of {len(controllers)} controllers: "
                + ", ".join(repr(c) for c in controllers),
                hint="say which with --controller NAME (jenkins.name)",
            )
        return LedgerEntry.from_row(rows[0]) if rows else None

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

    def retry(self, ids: Sequence[int], now: datetime, *, by: str = "ledger retry") -> int:
        """Set ``dead`` rows back to ``pending``, due now, with a fresh attempt budget; ``by``
        (who asked) is written in each row's history."""
        if not ids:
            return 0
        with self._write() as connection:
            retried = (
                connection.execute(
                    update(BuildRow)
                    .where(BuildRow.id.in_(list(ids)), BuildRow.status == "dead")
                    .values(status="pending", attempts=0, next_attempt_at=now)
                    .returning(BuildRow.id)
                )
                .scalars()
                .all()
            )
            if retried:  # in the row's history: who changed its fate, and when
                connection.execute(
                    INSERT_ATTEMPT,
                    [
                        operator_note(row_id, now, f"{by}: dead -> pending, attempts reset")
                        for row_id in retried
                    ],
                )
            return len(retried)

    def make_due(self, ids: Sequence[int] | None, now: datetime) -> int:
        """Make ``pending`` rows (``ids``, or all of them) due now, skipping their backoff: the
        first cycle of a process, and ``ledger retry --pending``."""
        if ids is not None and not ids:
            return 0
        statement = self._scoped(
            update(BuildRow).where(BuildRow.status == "pending", BuildRow.next_attempt_at > now),
            BuildRow,
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
                            controller=self.controller or "",
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
                f"ledger.url: the ledger cannot be written ({database_reason(exc)})",
                hint="check that the database (or the SQLite file and its directory) is "
                "writable by this user",
            ) from None

    def forget(self, job: str, number: int, now: datetime) -> bool:
        """Delete the row of ``job`` #``number`` (see :meth:`entry`) and move the job's cursor
        back below it, so the next cycle collects the build again (the only place a cursor moves
        backwards on the user's request). The forget is noted, and the new row's history starts
        with it. A build the ledger does not hold changes nothing."""
        entry = self.entry(job, number)
        if entry is None:
            return False
        attempts = sum(1 for a in self.history(entry.id) if a.outcome != "operator")
        note = (
            f"ledger forget: the row was {entry.status}"
            + (f" at {iso_utc(entry.sent_at, 'seconds')}" if entry.sent_at is not None else "")
            + f" after {attempts} attempt(s); collected again"
        )
        with self._write() as connection:
            deleted = connection.execute(delete(BuildRow).where(BuildRow.id == entry.id)).rowcount
            if not deleted:
                return False
            connection.execute(
                update(JobCursorRow)
                .where(
                    JobCursorRow.controller == entry.controller,
                    JobCursorRow.job == job,
                    JobCursorRow.last_number >= number,
                )
                .values(last_number=number - 1, updated_at=now)
            )
            statement = self._dialect.insert(ForgottenBuildRow).values(
                controller=entry.controller, job=job, number=number, forgotten_at=now, note=note
            )
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["controller", "job", "number"],
                    set_={"forgotten_at": now, "note": note},
                )
            )
            return True

    def stats(self) -> LedgerStats:
        with self._read() as connection:
            counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
            by_controller: dict[str, dict[str, int]] = {}
            for controller, status, count in connection.execute(
                self._scoped(
                    select(BuildRow.controller, BuildRow.status, func.count()), BuildRow
                ).group_by(BuildRow.controller, BuildRow.status)
            ):
                counts[status] += count
                by_controller.setdefault(controller, dict.fromkeys(STATUSES, 0))[status] = count
            oldest, waiting_since = connection.execute(
                self._scoped(
                    select(func.min(BuildRow.started_at), func.min(BuildRow.collected_at)),
                    BuildRow,
                ).where(BuildRow.status == "pending")
            ).one()
            last_cycle = connection.execute(
                self._scoped(select(func.max(CycleRow.finished_at)), CycleRow).where(
                    CycleRow.succeeded.is_(True)
                )
            ).scalar_one_or_none()
            held = connection.execute(
                self._scoped(select(func.count()).select_from(HeldBuildRow), HeldBuildRow)
            ).scalar_one()
        return LedgerStats(
            counts,
            utc(oldest),
            utc(last_cycle),
            dict(sorted(by_controller.items())),
            pending_since=utc(waiting_since),
            held=int(held),
        )

    def pending_count(self) -> int:
        with self._read() as connection:
            return int(
                connection.execute(
                    self._scoped(select(func.count()).select_from(BuildRow), BuildRow).where(
                        BuildRow.status == "pending"
                    )
                ).scalar_one()
            )

    def swap_note(self, key: str, value: str) -> str | None:
        """Record ``value`` under ``key``; returns what was recorded before (None: nothing)."""
        with self._write() as connection:
            before = connection.execute(
                select(NoteRow.value).where(NoteRow.controller == self._me, NoteRow.key == key)
            ).scalar_one_or_none()
            if before != value:
                statement = self._dialect.insert(NoteRow).values(
                    controller=self._me, key=key, value=value
                )
                connection.execute(
                    statement.on_conflict_do_update(
                        index_elements=["controller", "key"],
                        set_={"value": statement.excluded.value},
                    )
                )
            return before

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
                    controller=self._me,
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
