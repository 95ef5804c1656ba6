"""What one delivery attempt did: the one record the webhook client produces and the ledger writes.

It sits below both (the answer table is decided in :mod:`harvester.sei.webhook`; what the
row becomes, ``sent``/``pending``/``dead``, in :meth:`harvester.ledger.Ledger.record_attempt`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Outcome = Literal["sent", "retry", "throttled", "dead", "credentials", "url"]
"""sent: a 2xx. retry: 408, 5xx, a network error or a timeout. throttled: 429. dead: any other 4xx.
credentials: 401/403. url: a redirect, 404 or 405 (``sei.url`` is wrong)."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One HTTP attempt, as recorded in the delivery history. ``next_attempt_at`` is set by the
    deliverer (the backoff) before the ledger records a retry."""

    outcome: Outcome
    http_status: int | None
    error: str | None
    duration_ms: int
    next_attempt_at: datetime | None = None
    counted: bool = True
    """Whether a ``retry`` counts toward ``sei.max_attempts`` (not during an outage)."""
    body: str | None = None
    """The body sent, when it differs from the stored payload (the send-time envelope)."""
