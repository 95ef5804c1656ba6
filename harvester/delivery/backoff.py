"""How delivery waits: within a cycle (a few quick retries), across cycles (the row's next attempt
time), and when to stop for the cycle because the receiver is down."""

from __future__ import annotations

from datetime import timedelta

IN_CYCLE_ATTEMPTS = 3
"""POSTs per build within one cycle (quick, stamina's backoff) before waiting for a later cycle."""


def next_attempt_delay(attempts: int) -> timedelta:
    """Backoff across cycles: 15 s, 30 s, 1 min, ... capped at 15 min."""
    return timedelta(seconds=min(15 * 2 ** max(attempts - 1, 0), 900))
