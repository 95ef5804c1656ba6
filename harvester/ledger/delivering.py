"""The delivering half of the ledger: claims, leases, and what each attempt did to a row."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, update

from harvester.attempt import Attempt
from harvester.ledger.base import CLAIM_LEASE, LedgerBase
from harvester.ledger.records import AttemptRecord, LedgerEntry
from harvester.ledger.schema import BuildRow
from harvester.ledger.statements import (
    CLAIM_UPDATE,
    CLAIMED_ROWS,
    FILES_DATA,
    INSERT_ATTEMPT,
    RECORD_ATTEMPT,
    RECORD_SENT,
    SET_PAYLOAD,
)


class Delivering(LedgerBase):
    def claim_due(self, now: datetime, limit: int, owner: str) -> list[LedgerEntry]:
        """Pending rows whose next attempt is due, oldest build first, leased to ``owner`` so
        that no other worker or replica sends them meanwhile."""
        with self._fenced_write() as connection:
            db_now = self._dialect.clock(connection)
            ids = list(
                connection.execute(
                    self._claim_select,
                    {"controller": self._me, "now": now, "db_now": db_now, "limit": limit},
                ).scalars()
            )
            if not ids:
                return []
            connection.execute(
                CLAIM_UPDATE, {"ids": ids, "until": db_now + CLAIM_LEASE, "owner": owner}
            )
            rows = connection.execute(CLAIMED_ROWS, {"ids": ids}).all()
            return [LedgerEntry.from_row(row) for row in rows]

    def files_data(self, entry_id: int) -> bytes | None:
        """A claimed build's zip of logs and test reports (the plugin channel), read when it is
        sent: claims carry only what it holds, so a batch never holds many zips at once."""
        with self._read() as connection:
            data = connection.execute(FILES_DATA, {"row_id": entry_id}).scalar_one_or_none()
        return None if data is None else bytes(data)

    def renew(self, ids: Sequence[int], owner: str, now: datetime) -> set[int]:
        """Extend ``owner``'s claims on ``ids``; returns the ids it still holds (a claim that
        expired and was taken by another worker is lost: that worker sends the row)."""
        if not ids:
            return set()
        with self._fenced_write() as connection:
            rows = connection.execute(
                update(BuildRow)
                .where(
                    BuildRow.id.in_(list(ids)),
                    BuildRow.claimed_by == owner,
                    BuildRow.status == "pending",
                )
                .values(claimed_until=self._dialect.clock(connection) + CLAIM_LEASE)
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
        an outage, which spends no attempts. A row that died of that attempt is
        pending again."""
        if not ids:
            return
        with self._fenced_write() as connection:
            connection.execute(
                update(BuildRow)
                .where(
                    BuildRow.id.in_(list(ids)),
                    BuildRow.attempts > 0,
                    BuildRow.status.in_(("pending", "dead")),
                )
                .values(attempts=BuildRow.attempts - 1, status="pending")
            )

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
        record = AttemptRecord(entry_id, outcome, now, max_attempts, owner, keep_claim)
        with self._fenced_write() as connection:
            return self._record(connection, record)

    def _record(self, connection: Connection, record: AttemptRecord) -> str:
        entry_id, outcome, now, owner = record.entry_id, record.outcome, record.now, record.owner
        if outcome.outcome == "sent":
            return self._record_sent(connection, record)
        row = connection.execute(self._select_attempts, {"row_id": entry_id}).one_or_none()
        if row is None or row.claimed_by != owner:
            return "lost"
        kind = outcome.outcome  # not "sent" here (see _record_sent)
        counted = kind == "dead" or (kind == "retry" and outcome.counted)
        attempts = row.attempts + (1 if counted else 0)
        error = outcome.error
        next_attempt_at = None
        sent_at = None
        if kind == "dead" or (kind == "retry" and attempts >= record.max_attempts):
            status = "dead"
            if kind != "dead":
                error = f"gave up after {attempts} attempts; last: {outcome.error}"
        else:
            status = "pending"
            next_attempt_at = outcome.next_attempt_at or now
        keep = record.keep_claim and status == "pending"
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
                "lease_until": self._dialect.clock(connection) + CLAIM_LEASE if keep else None,
                "lease_owner": owner if keep else None,
            },
        )
        if outcome.body is not None:
            connection.execute(SET_PAYLOAD, {"row_id": entry_id, "body": outcome.body})
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

    def _record_sent(self, connection: Connection, record: AttemptRecord) -> str:
        row, history = _sent_values(record)
        if connection.execute(RECORD_SENT, row).one_or_none() is None:
            return "lost"
        connection.execute(INSERT_ATTEMPT, history)
        if record.outcome.body is not None:
            connection.execute(SET_PAYLOAD, row)
        return "sent"


def _sent_values(record: AttemptRecord) -> tuple[dict[str, Any], dict[str, Any]]:
    """The values of RECORD_SENT (the row, if ``record.owner`` still holds it) and of
    INSERT_ATTEMPT (its history) for a 2xx."""
    outcome = record.outcome
    row = {
        "row_id": record.entry_id,
        "owner": record.owner,
        "http_status": outcome.http_status,
        "sent": record.now,
        "body": outcome.body,
    }
    history = {
        "build_id": record.entry_id,
        "attempted_at": record.now,
        "outcome": "sent",
        "http_status": outcome.http_status,
        "error": None,
        "duration_ms": outcome.duration_ms,
    }
    return row, history
