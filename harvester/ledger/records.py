"""What the ledger hands in and out: plain frozen records, no SQLAlchemy objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from harvester.attempt import Attempt
from harvester.util.timeparse import iso_utc

Status = Literal["pending", "sent", "dead", "skipped"]
STATUSES: tuple[Status, ...] = ("pending", "sent", "dead", "skipped")


def utc(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything we store is UTC.
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@dataclass(frozen=True, slots=True)
class NewBuild:
    """A collected build about to be written as ``pending``, or as ``skipped`` with the reason
    (``skipped``: it is recorded, and never sent)."""

    job: str
    number: int
    result: str | None
    payload: str
    started_at: datetime
    skipped: str | None = None
    files: bytes | None = None
    """The plugin channel's zip of logs and test reports, sent beside the payload."""
    files_summary: str | None = None
    """What the zip holds, as JSON (names, sizes, test counts)."""


@dataclass(frozen=True, slots=True)
class Row:
    """A build's row without its payload (the status page's tables)."""

    id: int
    controller: str
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

    @property
    def key(self) -> str:
        """Where the next page starts (keyset pagination: any page costs the same)."""
        return f"{self.started_at.timestamp():.6f}:{self.id}"

    @classmethod
    def from_row(cls, row: Any) -> Row:
        return cls(**_row_fields(row))

    def as_json(self, timespec: str = "auto") -> dict[str, Any]:
        """The row as ``ledger list --json`` and the status page's ``/api`` give it."""
        return {
            "controller": self.controller,
            "job": self.job,
            "build": self.number,
            "status": self.status,
            "result": self.result,
            "attempts": self.attempts,
            "started_at": iso_utc(self.started_at, timespec),
            "collected_at": iso_utc(self.collected_at, timespec),
            "sent_at": iso_utc(self.sent_at, timespec),
            "next_attempt_at": iso_utc(self.next_attempt_at, timespec)
            if self.status == "pending"
            else None,
            "last_error": self.last_error,
            "last_http_status": self.last_http_status,
        }


def _row_fields(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "controller": row.controller,
        "job": row.job,
        "number": row.number,
        "status": row.status,
        "result": row.result,
        "attempts": row.attempts,
        "started_at": utc(row.started_at),
        "collected_at": utc(row.collected_at),
        "sent_at": utc(row.sent_at),
        "next_attempt_at": utc(row.next_attempt_at),
        "last_error": row.last_error,
        "last_http_status": row.last_http_status,
    }


@dataclass(frozen=True, slots=True)
class LedgerEntry(Row):
    """A build's row with its payload, and what the plugin channel's files beside it hold (the
    zip itself is read on its own: :meth:`Ledger.files_data`)."""

    payload: str
    files_summary: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> LedgerEntry:
        return cls(**_row_fields(row), payload=row.payload, files_summary=row.files_summary)


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One row of a build's delivery history, as ``ledger show`` prints it."""

    attempted_at: datetime
    outcome: str
    http_status: int | None
    error: str | None
    duration_ms: int

    def as_json(self, timespec: str = "auto") -> dict[str, Any]:
        return {
            "attempted_at": iso_utc(self.attempted_at, timespec),
            "outcome": self.outcome,
            "http_status": self.http_status,
            "error": self.error,
            "duration_ms": self.duration_ms,
        }


@dataclass(frozen=True, slots=True)
class LedgerStats:
    counts: dict[str, int]
    oldest_pending_started_at: datetime | None
    last_successful_cycle_at: datetime | None
    by_controller: dict[str, dict[str, int]] = field(default_factory=dict)
    """The counts of each controller whose rows were counted."""
    pending_since: datetime | None = None
    """When the pending row waiting longest was collected (an alert's measure: a backfilled
    build started long ago, but it has waited only since it was collected)."""
    held: int = 0
    """Builds held back by number (still running, or their details failed to load): not rows
    yet, re-checked every cycle."""


@dataclass(frozen=True)
class AttemptRecord:
    """One answer to write (:meth:`Ledger.record_attempt`)."""

    entry_id: int
    outcome: Attempt
    now: datetime
    max_attempts: int
    owner: str
    keep_claim: bool = False
