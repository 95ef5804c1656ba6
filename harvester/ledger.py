"""The sent-builds ledger (CONTRACT §5) on SQLAlchemy 2: SQLite by default, PostgreSQL when shared.

This is the only module that imports SQLAlchemy and Alembic. It is an outbox: a build's payload is
written as ``pending`` before the first delivery attempt and marked ``sent`` only after a 2xx, so a
crash loses nothing.

SQLite from several threads needs three things, or writers fail with "database is locked": WAL (readers
never block the writer), ``busy_timeout`` (wait for the lock instead of failing), and write
transactions that take the write lock up front with ``BEGIN IMMEDIATE`` (a deferred transaction that
reads and then writes can deadlock against another and fail at once, whatever the timeout).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from harvester.errors import LedgerError
from harvester.names import glob_match
from harvester.timeparse import iso_utc

Status = Literal["pending", "sent", "dead"]
STATUSES: tuple[Status, ...] = ("pending", "sent", "dead")

SQLITE_BUSY_TIMEOUT_MS = 30_000
# A claimed row is not handed to another worker or replica for this long; if the process dies with
# the row claimed, it becomes due again afterwards (at worst sent twice, never lost).
CLAIM_LEASE = timedelta(minutes=5)


class Base(DeclarativeBase):
    pass


class BuildRow(Base):
    __tablename__ = "builds"
    __table_args__ = (
        UniqueConstraint("job", "number", name="uq_builds_job_number"),
        Index("ix_builds_status_next_attempt", "status", "next_attempt_at"),
        Index("ix_builds_job", "job", "number"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(1024))
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    result: Mapped[str | None] = mapped_column(String(32))
    # The JSON body exactly as it is (and will be) POSTed: re-sends are byte-identical.
    payload: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Set while a worker holds the row (see claim_due); a crashed worker's claim simply expires,
    # or is released early by release_dead_claims when its owner is known to be gone.
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_by: Mapped[str | None] = mapped_column(String(255))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_http_status: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    collected_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DeliveryAttemptRow(Base):
    __tablename__ = "delivery_attempts"
    __table_args__ = (Index("ix_delivery_attempts_build", "build_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    build_id: Mapped[int] = mapped_column(ForeignKey("builds.id", ondelete="CASCADE"))
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(16))
    http_status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)


class JobCursorRow(Base):
    __tablename__ = "job_cursors"

    job: Mapped[str] = mapped_column(String(1024), primary_key=True)
    # Every build of the job numbered <= this is settled: in the ledger, or deliberately not sent.
    last_number: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CycleRow(Base):
    __tablename__ = "cycles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    succeeded: Mapped[bool] = mapped_column(Boolean)
    collected: Mapped[int] = mapped_column(Integer)
    delivered: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    jenkins_requests: Mapped[int] = mapped_column(BigInteger)


# The statements of the per-build hot path (claim, record), built once: SQLAlchemy then skips
# building and keying them on every call, which was most of a delivery's CPU.
_BUILDS = Base.metadata.tables[BuildRow.__tablename__]
_UTC_TIME = DateTime(timezone=True)
_SELECT_ATTEMPTS = select(_BUILDS.c.attempts).where(_BUILDS.c.id == bindparam("row_id"))
_RECORD_ATTEMPT = (
    update(_BUILDS)
    .where(_BUILDS.c.id == bindparam("row_id"))
    .values(
        status=bindparam("new_status"),
        attempts=bindparam("new_attempts"),
        last_http_status=bindparam("http_status"),
        last_error=bindparam("error"),
        # Only a retry moves the next attempt; only a 2xx sets sent_at.
        next_attempt_at=func.coalesce(
            bindparam("next_at", type_=_UTC_TIME), _BUILDS.c.next_attempt_at
        ),
        sent_at=func.coalesce(bindparam("sent", type_=_UTC_TIME), _BUILDS.c.sent_at),
        claimed_until=None,
        claimed_by=None,
    )
)
_INSERT_ATTEMPT = insert(Base.metadata.tables[DeliveryAttemptRow.__tablename__])
_CLAIM_SELECT = (
    select(_BUILDS)
    .where(
        _BUILDS.c.status == "pending",
        _BUILDS.c.next_attempt_at <= bindparam("now", type_=_UTC_TIME),
        or_(
            _BUILDS.c.claimed_until.is_(None),
            _BUILDS.c.claimed_until <= bindparam("now", type_=_UTC_TIME),
        ),
    )
    .order_by(_BUILDS.c.started_at, _BUILDS.c.id)
    .limit(bindparam("limit"))
)
# Two replicas on one PostgreSQL ledger each take different rows instead of waiting.
_CLAIM_SELECT_FOR_UPDATE = _CLAIM_SELECT.with_for_update(skip_locked=True)
_CLAIM_UPDATE = (
    update(_BUILDS)
    .where(_BUILDS.c.id.in_(bindparam("ids", expanding=True)))
    .values(claimed_until=bindparam("until", type_=_UTC_TIME), claimed_by=bindparam("owner"))
)


def _utc(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything we store is UTC.
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@dataclass(frozen=True, slots=True)
class NewBuild:
    """A collected build about to be written as ``pending``."""

    job: str
    number: int
    result: str | None
    payload: str
    started_at: datetime


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: int
    job: str
    number: int
    status: str
    result: str | None
    attempts: int
    started_at: datetime
    collected_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime
    last_error: str | None
    last_http_status: int | None
    payload: str

    @classmethod
    def from_row(cls, row: Any) -> LedgerEntry:
        return cls(
            id=row.id,
            job=row.job,
            number=row.number,
            status=row.status,
            result=row.result,
            attempts=row.attempts,
            started_at=_utc(row.started_at),  # type: ignore[arg-type]
            collected_at=_utc(row.collected_at),  # type: ignore[arg-type]
            sent_at=_utc(row.sent_at),
            next_attempt_at=_utc(row.next_attempt_at),  # type: ignore[arg-type]
            last_error=row.last_error,
            last_http_status=row.last_http_status,
            payload=row.payload,
        )


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    attempted_at: datetime
    outcome: str
    http_status: int | None
    error: str | None
    duration_ms: int


@dataclass(frozen=True, slots=True)
class LedgerStats:
    counts: dict[str, int]
    oldest_pending_started_at: datetime | None
    last_successful_cycle_at: datetime | None


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What one delivery attempt did, to be written with its history row in one transaction."""

    outcome: Literal["sent", "retry", "dead", "credentials"]
    http_status: int | None
    error: str | None
    duration_ms: int
    next_attempt_at: datetime | None = None


def migrations_location() -> Path:
    """Where Alembic's scripts live: inside the installed package (``harvester.migrations``), or,
    when running from a source checkout that shadows the installed package, the repo's
    top-level ``migrations/``."""
    try:
        return Path(str(resources.files("harvester.migrations")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "migrations"


def _alembic_config(connection: Connection) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(migrations_location()))
    config.attributes["connection"] = connection
    return config


def _prepare_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event decide how each transaction starts (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # In WAL mode NORMAL is still crash-safe for the database; the last commits may roll back
        # on power loss, which the outbox tolerates (a build is then collected again).
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get("harvester_readonly"):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_ledger_engine(url: str) -> Engine:
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            _prepare_sqlite(engine)
        else:
            engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise LedgerError(
            f"ledger.url: cannot open the ledger ({exc.__class__.__name__}: {exc})",
            hint="check the URL; PostgreSQL needs the 'postgres' extra (psycopg) installed",
        ) from None
    return engine


class Ledger:
    """All reads and writes of the ledger. Thread-safe: each call uses its own connection."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Ledger:
        ledger = cls(create_ledger_engine(url))
        if migrate:
            ledger.upgrade()
        return ledger

    def close(self) -> None:
        self._engine.dispose()

    # -- schema -------------------------------------------------------------------------------

    def upgrade(self, revision: str = "head") -> None:
        try:
            with self._engine.begin() as connection:
                command.upgrade(_alembic_config(connection), revision)
        except OperationalError as exc:
            raise LedgerError(
                f"ledger: cannot open or migrate the database ({exc.orig})",
                hint="check ledger.url, that its directory exists and is writable",
            ) from None

    def downgrade(self, revision: str = "base") -> None:
        with self._engine.begin() as connection:
            command.downgrade(_alembic_config(connection), revision)

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

    def _insert(self, table: Any) -> Any:
        if self._dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

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
                    self._insert(BuildRow)
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
        statement = self._insert(JobCursorRow).values(job=job, last_number=number, updated_at=now)
        excluded = statement.excluded
        statement = statement.on_conflict_do_update(
            index_elements=["job"],
            # Never backwards: a late or concurrent writer must not re-open settled builds.
            set_={
                "last_number": func.max(JobCursorRow.last_number, excluded.last_number)
                if self._dialect == "sqlite"
                else func.greatest(JobCursorRow.last_number, excluded.last_number),
                "updated_at": excluded.updated_at,
            },
        )
        connection.execute(statement)

    # -- delivering ---------------------------------------------------------------------------

    def claim_due(self, now: datetime, limit: int, owner: str) -> list[LedgerEntry]:
        """Pending rows whose next attempt is due, oldest build first, leased to the caller so that
        another worker or replica does not send them at the same time."""
        statement = _CLAIM_SELECT_FOR_UPDATE if self._dialect == "postgresql" else _CLAIM_SELECT
        with self._write() as connection:
            rows = connection.execute(statement, {"now": now, "limit": limit}).all()
            if rows:
                connection.execute(
                    _CLAIM_UPDATE,
                    {"ids": [row.id for row in rows], "until": now + CLAIM_LEASE, "owner": owner},
                )
            return [LedgerEntry.from_row(row) for row in rows]

    def release(self, ids: Sequence[int], next_attempt_at: datetime | None = None) -> None:
        """Hand back claimed rows that were not attempted (delivery stopped)."""
        if not ids:
            return
        values: dict[str, Any] = {"claimed_until": None, "claimed_by": None}
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        with self._write() as connection:
            connection.execute(
                update(BuildRow)
                .where(BuildRow.id.in_(list(ids)), BuildRow.status == "pending")
                .values(**values)
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
        self, entry_id: int, outcome: AttemptOutcome, *, now: datetime, max_attempts: int
    ) -> str:
        """Write one delivery attempt and its effect on the row; returns the row's new status."""
        with self._write() as connection:
            attempts = connection.execute(
                _SELECT_ATTEMPTS, {"row_id": entry_id}
            ).scalar_one_or_none()
            if attempts is None:  # forgotten while in flight: nothing to record against
                return "forgotten"
            counted = outcome.outcome != "credentials"
            attempts += 1 if counted else 0
            error = outcome.error
            next_attempt_at = None
            sent_at = None
            if outcome.outcome == "sent":
                status, error, sent_at = "sent", None, now
            elif outcome.outcome == "dead" or attempts >= max_attempts:
                status = "dead"
                if outcome.outcome != "dead":
                    error = f"gave up after {attempts} attempts; last: {outcome.error}"
            else:
                status = "pending"
                next_attempt_at = outcome.next_attempt_at or now
            connection.execute(
                _RECORD_ATTEMPT,
                {
                    "row_id": entry_id,
                    "new_status": status,
                    "new_attempts": attempts,
                    "http_status": outcome.http_status,
                    "error": error,
                    "next_at": next_attempt_at,
                    "sent": sent_at,
                },
            )
            connection.execute(
                _INSERT_ATTEMPT,
                {
                    "build_id": entry_id,
                    "attempted_at": now,
                    "outcome": outcome.outcome if status != "dead" else "dead",
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
                attempted_at=_utc(r.attempted_at),  # type: ignore[arg-type]
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
        return LedgerStats(counts, _utc(oldest), _utc(last_cycle))

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
                self._insert(CycleRow).values(
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


def entry_as_json(entry: LedgerEntry) -> dict[str, Any]:
    """The ``ledger list --json`` object (CONTRACT §2: these keys at least)."""
    return {
        "job": entry.job,
        "build": entry.number,
        "status": entry.status,
        "result": entry.result,
        "attempts": entry.attempts,
        "started_at": iso_utc(entry.started_at),
        "collected_at": iso_utc(entry.collected_at),
        "sent_at": iso_utc(entry.sent_at),
        "next_attempt_at": iso_utc(entry.next_attempt_at) if entry.status == "pending" else None,
        "last_error": entry.last_error,
        "last_http_status": entry.last_http_status,
    }
