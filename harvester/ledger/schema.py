"""The ledger's tables. Alembic's migrations in ``migrations/`` create them; a test
checks that the two never drift apart."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def _controller() -> Mapped[str]:
    # Whose row it is (jenkins.name); '' until a 0.1 ledger's rows are adopted.
    return mapped_column(String(255), server_default="")


class BuildRow(Base):
    __tablename__ = "builds"
    __table_args__ = (
        # A number reused by a re-created job is a second build under the same (job, number).
        UniqueConstraint(
            "controller",
            "job",
            "number",
            "started_at",
            name="uq_builds_controller_job_number_started",
        ),
        Index("ix_builds_job", "controller", "job", "number"),
        # The status page's pages of every status, newest first, by key (migration 0008).
        Index("ix_builds_started", "controller", "started_at", "id"),
        # The claim query's order and filters: it walks this and stops at its LIMIT, never reading
        # a row's payload (migrations 0004, 0005).
        Index(
            "ix_builds_claim",
            "controller",
            "status",
            "started_at",
            "id",
            "next_attempt_at",
            "claimed_until",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    controller: Mapped[str] = _controller()
    job: Mapped[str] = mapped_column(String(1024))
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    result: Mapped[str | None] = mapped_column(String(32))
    # The payload is in build_payloads (BuildPayloadRow).
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


class BuildPayloadRow(Base):
    """A build's payload, beside its row rather than in it: the row changes at every claim and
    attempt, and SQLite writes a row whose size changed anew, payload and all (migration 0006)."""

    __tablename__ = "build_payloads"

    build_id: Mapped[int] = mapped_column(
        ForeignKey("builds.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    # The JSON body exactly as it is (and will be) POSTed: re-sends are byte-identical.
    payload: Mapped[str] = mapped_column(Text)


class BuildFilesRow(Base):
    """The plugin channel's zip of a build's failed-step logs and JUnit reports, captured at
    collection and sent beside its payload at every attempt (migration 0008)."""

    __tablename__ = "build_files"

    build_id: Mapped[int] = mapped_column(
        ForeignKey("builds.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    data: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # What the zip holds, as JSON: log names, their nodes and sizes; test counts.
    summary: Mapped[str] = mapped_column(Text)


class DeliveryAttemptRow(Base):
    __tablename__ = "delivery_attempts"
    __table_args__ = (
        Index("ix_delivery_attempts_build", "build_id"),
        # The status page's chart: the last 24 hours of attempts (migration 0008).
        Index("ix_delivery_attempts_time", "attempted_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    build_id: Mapped[int] = mapped_column(ForeignKey("builds.id", ondelete="CASCADE"))
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(16))
    http_status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)


class JobCursorRow(Base):
    __tablename__ = "job_cursors"
    __table_args__ = (PrimaryKeyConstraint("controller", "job", name="pk_job_cursors"),)

    controller: Mapped[str] = _controller()
    job: Mapped[str] = mapped_column(String(1024))
    # Every build of the job numbered <= this is settled: in the ledger, or deliberately not sent.
    last_number: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class HeldBuildRow(Base):
    """A build that could not be settled yet (still running, or its details failed to load):
    re-checked on its own each cycle; the job's cursor moves past it."""

    __tablename__ = "held_builds"
    __table_args__ = (PrimaryKeyConstraint("controller", "job", "number", name="pk_held_builds"),)

    controller: Mapped[str] = _controller()
    job: Mapped[str] = mapped_column(String(1024))
    number: Mapped[int] = mapped_column(Integer)
    held_since: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Why, as last seen: "still running", or the error its details failed with (migration 0008).
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class ForgottenBuildRow(Base):
    """A build the operator forgot (``ledger forget``), until it is collected again: the new row's
    history starts with this note, so the forget stays visible (migration 0008)."""

    __tablename__ = "forgotten_builds"
    __table_args__ = (
        PrimaryKeyConstraint("controller", "job", "number", name="pk_forgotten_builds"),
    )

    controller: Mapped[str] = _controller()
    job: Mapped[str] = mapped_column(String(1024))
    number: Mapped[int] = mapped_column(Integer)
    forgotten_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    note: Mapped[str] = mapped_column(Text)


class NoteRow(Base):
    """What the last run was configured with, where a change needs a word to the user."""

    __tablename__ = "notes"
    __table_args__ = (PrimaryKeyConstraint("controller", "key", name="pk_notes"),)

    controller: Mapped[str] = _controller()
    key: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(Text)


class LeaseRow(Base):
    """Which replica of a controller is the active one: taken when expired, renewed
    by its holder; ``epoch`` grows at every takeover, and every write that matters checks it."""

    __tablename__ = "leases"
    __table_args__ = (PrimaryKeyConstraint("controller", name="pk_leases"),)

    controller: Mapped[str] = mapped_column(String(255))
    holder: Mapped[str | None] = mapped_column(String(36), nullable=True)
    epoch: Mapped[int] = mapped_column(Integer, server_default="0")
    # On the database's clock: replicas on hosts whose clocks disagree agree on it.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class CycleRow(Base):
    __tablename__ = "cycles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    controller: Mapped[str] = _controller()
    kind: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    succeeded: Mapped[bool] = mapped_column(Boolean)
    collected: Mapped[int] = mapped_column(Integer)
    delivered: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    jenkins_requests: Mapped[int] = mapped_column(BigInteger)


class ReplicaRow(Base):
    """A running process of a controller: its heartbeat is written on the
    database's clock, so that replicas on hosts whose clocks disagree agree on who is alive."""

    __tablename__ = "replicas"
    __table_args__ = (Index("ix_replicas_controller", "controller", "heartbeat_at"),)

    # A uuid per process: host:pid is 1 in every container.
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    controller: Mapped[str] = mapped_column(String(255))
    # "daemon" replicas elect one active among them; "once" and "catch-up" runs work beside it.
    kind: Mapped[str] = mapped_column(String(16))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    # Which process exactly (boot, pid namespace, pid, start time): one on this host that is
    # gone is dead at once, without waiting 3 intervals (see ledger.replicas.process_gone).
    process: Mapped[str] = mapped_column(String(255))
    # Dead after 3 of these without a heartbeat.
    interval_seconds: Mapped[float] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


BUILDS = Base.metadata.tables[BuildRow.__tablename__]
BUILD_PAYLOADS = Base.metadata.tables[BuildPayloadRow.__tablename__]
BUILD_FILES = Base.metadata.tables[BuildFilesRow.__tablename__]
DELIVERY_ATTEMPTS = Base.metadata.tables[DeliveryAttemptRow.__tablename__]
REPLICAS = Base.metadata.tables[ReplicaRow.__tablename__]
JOB_CURSORS = Base.metadata.tables[JobCursorRow.__tablename__]
