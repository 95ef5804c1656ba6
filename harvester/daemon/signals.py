"""SIGINT and SIGTERM: the first stops the work gently (no new request, those in
flight finish within their timeouts, the ledger is committed); a second exits at once. What was
committed is never lost: every write is its own transaction."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger("harvester")

SIGNALS = (signal.SIGTERM, signal.SIGINT)
EXIT_AT_ONCE = 130


@contextmanager
def stop_on_signals(
    stop: threading.Event, on_stop: Callable[[], None] | None = None
) -> Iterator[threading.Event]:
    """While inside, SIGINT/SIGTERM set ``stop`` (and call ``on_stop``); a second one exits."""

    def handle(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.warning("%s again: exiting at once (what was committed is kept)", name)
            os._exit(EXIT_AT_ONCE)
        log.warning(
            "%s received: no new requests; finishing those in flight, then stopping "
            "(send it again to exit at once)",
            name,
        )
        stop.set()
        if on_stop is not None:
            on_stop()

    if threading.current_thread() is not threading.main_thread():
        yield stop  # signals reach the main thread only (tests drive commands from threads)
        return
    previous = {sig: signal.signal(sig, handle) for sig in SIGNALS}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
