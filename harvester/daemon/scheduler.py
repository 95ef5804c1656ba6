"""The daemon's loop on APScheduler 3 (``BlockingScheduler``): the only module importing apscheduler.

One interval job: first run at start, ``max_instances=1`` (a slow cycle is never run twice at once),
``coalesce`` (missed runs collapse into one), and a misfire grace time of a whole interval: the
default of 1 s silently drops runs when the machine is busy.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler

from harvester.daemon.signals import stop_on_signals
from harvester.errors import HarvesterError

log = logging.getLogger(__name__)


LIVENESS_SECONDS = 5.0
"""How often the scheduler proves it still dispatches jobs (``/livez``), whatever a cycle does."""


def run_forever(
    cycle: Callable[[], object],
    *,
    interval_seconds: float,
    stop: threading.Event,
    alive: Callable[[], None] | None = None,
) -> None:
    """Run ``cycle`` every interval until SIGTERM/SIGINT (or ``stop``); returns after the cycle in
    flight has finished its current request and committed. ``alive`` is called every
    LIVENESS_SECONDS from an executor of its own, so a long cycle (a backlog, an outage) never
    makes the process look dead."""
    scheduler = BlockingScheduler(
        timezone=UTC,
        executors={
            "default": ThreadPoolExecutor(max_workers=1),
            "liveness": ThreadPoolExecutor(max_workers=1),
        },
    )
    if alive is not None:
        scheduler.add_job(
            alive,
            "interval",
            seconds=LIVENESS_SECONDS,
            next_run_time=datetime.now(tz=UTC),
            id="liveness",
            executor="liveness",
            coalesce=True,
            misfire_grace_time=int(LIVENESS_SECONDS),
        )

    def guarded() -> None:
        if stop.is_set():
            return
        try:
            cycle()
        except HarvesterError as exc:  # expected (the ledger's database went away): no traceback
            log.error("cycle failed: %s; the next one runs in %.0f s", exc, interval_seconds)
        except Exception:  # a failing cycle is logged; the daemon goes on
            log.exception("cycle failed; the next one runs in %.0f s", interval_seconds)

    scheduler.add_job(
        guarded,
        "interval",
        seconds=interval_seconds,
        next_run_time=datetime.now(tz=UTC),
        id="cycle",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=max(int(interval_seconds), 1),
    )

    def shut_down() -> None:
        # From a thread: shutdown(wait=True) joins the cycle, which must not block the handler.
        threading.Thread(target=scheduler.shutdown, kwargs={"wait": True}, daemon=True).start()

    with stop_on_signals(stop, shut_down):
        scheduler.start()
    log.info("stopped")
