"""The statements of the per-build hot path (claim, record), built once: SQLAlchemy then skips
building and keying them on every call, which was most of a delivery's CPU."""

from __future__ import annotations

from typing import Any

from sqlalchemy import DateTime, bindparam, func, insert, or_, select, update

from harvester.ledger.schema import BUILD_FILES, BUILD_PAYLOADS, BUILDS, DELIVERY_ATTEMPTS

_UTC_TIME = DateTime(timezone=True)
SELECT_ATTEMPTS = select(BUILDS.c.attempts, BUILDS.c.claimed_by).where(
    BUILDS.c.id == bindparam("row_id")
)
RECORD_ATTEMPT = (
    update(BUILDS)
    .where(BUILDS.c.id == bindparam("row_id"))
    .values(
        status=bindparam("new_status"),
        attempts=bindparam("new_attempts"),
        last_http_status=bindparam("http_status"),
        last_error=bindparam("error"),
        # Only a retry moves the next attempt; only a 2xx sets sent_at.
        next_attempt_at=func.coalesce(
            bindparam("next_at", type_=_UTC_TIME), BUILDS.c.next_attempt_at
        ),
        sent_at=func.coalesce(bindparam("sent", type_=_UTC_TIME), BUILDS.c.sent_at),
        # A worker that goes on retrying keeps (and renews) its claim; otherwise it is released.
        claimed_until=bindparam("lease_until", type_=_UTC_TIME),
        claimed_by=bindparam("lease_owner"),
    )
)
INSERT_ATTEMPT = insert(DELIVERY_ATTEMPTS)


def operator_note(build_id: int, at: Any, text: str) -> dict[str, Any]:
    """A row of a build's history that an operator's action wrote (retry, forget)."""
    return {
        "build_id": build_id,
        "attempted_at": at,
        "outcome": "operator",
        "http_status": None,
        "error": text,
        "duration_ms": 0,
    }


# Narrow: ids only, in the index's order, so the database neither reads nor sorts payloads of
# rows it does not hand out; the rows claimed are then read by id (CLAIMED_ROWS).
CLAIM_SELECT = (
    select(BUILDS.c.id)
    .where(
        BUILDS.c.controller == bindparam("controller"),
        BUILDS.c.status == "pending",
        BUILDS.c.next_attempt_at <= bindparam("now", type_=_UTC_TIME),
        or_(
            BUILDS.c.claimed_until.is_(None),
            # Leases are on the database's clock (the "now" above is the deliverer's own).
            BUILDS.c.claimed_until <= bindparam("db_now", type_=_UTC_TIME),
        ),
    )
    .order_by(BUILDS.c.started_at, BUILDS.c.id)
    .limit(bindparam("limit"))
)
# A build's row with its payload, and what the plugin channel's files hold when it has any (not
# the zip: up to some MiB, read for one build at a time, FILES_DATA): what LedgerEntry.from_row
# reads.
ENTRIES = (
    select(BUILDS, BUILD_PAYLOADS.c.payload, BUILD_FILES.c.summary.label("files_summary"))
    .join_from(BUILDS, BUILD_PAYLOADS, BUILD_PAYLOADS.c.build_id == BUILDS.c.id)
    .outerjoin(BUILD_FILES, BUILD_FILES.c.build_id == BUILDS.c.id)
)
INSERT_FILES = insert(BUILD_FILES)
CLAIMED_ROWS = ENTRIES.where(BUILDS.c.id.in_(bindparam("ids", expanding=True))).order_by(
    BUILDS.c.started_at, BUILDS.c.id
)
FILES_DATA = select(BUILD_FILES.c.data).where(BUILD_FILES.c.build_id == bindparam("row_id"))
# The body actually sent, when the send-time envelope changed it (recorded with the attempt).
SET_PAYLOAD = (
    update(BUILD_PAYLOADS)
    .where(BUILD_PAYLOADS.c.build_id == bindparam("row_id"))
    .values(payload=bindparam("body"))
)
INSERT_PAYLOAD = insert(BUILD_PAYLOADS)
CLAIM_UPDATE = (
    update(BUILDS)
    .where(BUILDS.c.id.in_(bindparam("ids", expanding=True)))
    .values(claimed_until=bindparam("until", type_=_UTC_TIME), claimed_by=bindparam("owner"))
)
# A 2xx, the common case: final whatever the attempts so far, so one conditional UPDATE (no read
# first) records it for the claim's holder only.
RECORD_SENT = (
    update(BUILDS)
    .where(BUILDS.c.id == bindparam("row_id"), BUILDS.c.claimed_by == bindparam("owner"))
    .values(
        status="sent",
        attempts=BUILDS.c.attempts + 1,
        last_http_status=bindparam("http_status"),
        last_error=None,
        sent_at=bindparam("sent", type_=_UTC_TIME),
        claimed_until=None,
        claimed_by=None,
    )
    .returning(BUILDS.c.id)
)
