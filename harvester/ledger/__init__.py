"""The sent-builds ledger: the only package that imports SQLAlchemy and Alembic.

Import from here; the modules behind it are :mod:`.store` (the :class:`Ledger` and its queries),
:mod:`.schema` (tables), :mod:`.records` (what goes in and out), :mod:`.dialects` (SQLite and
PostgreSQL differences) and :mod:`.migrate` (Alembic).
"""

from harvester.ledger.base import CLAIM_LEASE, Fence
from harvester.ledger.browse import Cycle, Held, JobSummary
from harvester.ledger.dialects import Dialect
from harvester.ledger.records import (
    STATUSES,
    DeliveryAttempt,
    LedgerEntry,
    LedgerStats,
    NewBuild,
    Row,
    Status,
)
from harvester.ledger.schema import Base
from harvester.ledger.store import Ledger

__all__ = [
    "CLAIM_LEASE",
    "STATUSES",
    "Base",
    "Cycle",
    "DeliveryAttempt",
    "Dialect",
    "Fence",
    "Held",
    "JobSummary",
    "Ledger",
    "LedgerEntry",
    "LedgerStats",
    "NewBuild",
    "Row",
    "Status",
]
