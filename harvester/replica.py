"""This process as a replica of its controller (CONTRACT §7): registered in the ledger under a
uuid, heartbeating from a thread of its own (a long cycle or catch-up never looks dead), and, for a
daemon, collecting only the jobs that rendezvous hashing gives it among the live daemons."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from harvester.collect.split import owner_of
from harvester.errors import HarvesterError
from harvester.jenkins.discovery import DiscoveredJob
from harvester.ledger import Ledger
from harvester.ledger.replicas import new_replica_id

log = logging.getLogger(__name__)

# Beats per interval: a replica is dead after 3 intervals, so a few missed beats (a database
# blip) never make a live one look dead.
BEATS_PER_INTERVAL = 3
# How stale this replica's view of the live replicas may be while it collects.
REFRESH_SECONDS = 0.25


class Membership:
    """Registered by :meth:`join`, heartbeating meanwhile, gone after :meth:`leave` (the other
    replicas then take its jobs at their next cycle, without waiting 3 intervals)."""

    def __init__(self, ledger: Ledger, kind: str, interval_seconds: float) -> None:
        self.ledger = ledger
        self._unlock: Callable[[], None] | None = None
        self.kind = kind
        # Only daemons split the work, and only where several may run (not on SQLite, where a
        # second daemon is refused): elsewhere a replica collects every job, as before.
        self.shares = kind == "daemon" and ledger.dialect_name != "sqlite"
        self.interval = float(interval_seconds)
        self.id = new_replica_id()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._peers: tuple[str, ...] = (self.id,)
        self._lock = threading.Lock()
        self._fetched_at: float | None = None

    def join(self) -> None:
        """Register; a daemon first takes the SQLite ledger's daemon lock (ConfigError when
        another daemon holds it; a no-op on PostgreSQL)."""
        if self.kind == "daemon":
            self._unlock = self.ledger.hold_daemon_lock()
        try:
            self.ledger.register(self.id, self.kind, self.interval)
        except BaseException:
            self._release_lock()
            raise
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        self._thread.start()

    def leave(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.ledger.deregister(self.id)
        except HarvesterError as exc:  # leaving is a courtesy: the others find us dead anyway
            log.warning("could not leave the replica registry: %s", exc)
        self._release_lock()

    def _release_lock(self) -> None:
        if self._unlock is not None:
            self._unlock()
            self._unlock = None

    def _beat(self) -> None:
        while not self._stop.wait(self.interval / BEATS_PER_INTERVAL):
            try:
                self.ledger.heartbeat(self.id, self.kind, self.interval)
            except HarvesterError as exc:
                log.warning(
                    "heartbeat not written (the others take over this replica's work after 3 "
                    "intervals without one): %s",
                    exc,
                )

    def discovery(self, discover: Callable[[], list[DiscoveredJob]]) -> list[DiscoveredJob]:
        """The job list, asked of Jenkins by one live daemon per interval and shared through
        the ledger, so that replicas together make one discovery per interval, as one would
        (CONTRACT §7). A replica may then see a list up to 0.9 interval old: a build that
        finished meanwhile is collected at its next cycle."""
        if not self.shares or len(self._live()) < 2:
            return discover()

        def compute() -> str:
            return json.dumps([dataclasses.asdict(job) for job in discover()])

        stored = self.ledger.shared_value(
            "discovery", timedelta(seconds=0.9 * self.interval), compute
        )
        try:
            return [DiscoveredJob(**job) for job in json.loads(stored)]
        except (TypeError, ValueError):  # written by another version: ask Jenkins ourselves
            return discover()

    def owner(self) -> str:
        """An owner for one deliverer's claims: this replica's id, then the deliverer's."""
        return f"{self.id}/{uuid.uuid4().hex[:8]}"

    def jobs(self) -> Callable[[str], bool] | None:
        """Which jobs this replica collects: for a daemon, those it wins among the live daemons
        of its controller; None (every job) for a one-off run. The collector asks again right
        before each job, and the live replicas are re-read at most every REFRESH_SECONDS: a
        replica that joins mid-cycle takes its jobs at once instead of both collecting them."""
        if not self.shares:
            return None
        self._fetched_at = None
        return self._owns

    def _owns(self, job: str) -> bool:
        return owner_of(job, self._live()) == self.id

    def _live(self) -> tuple[str, ...]:
        """The live daemons of this controller (this one included), re-read when stale."""
        with self._lock:
            now = time.monotonic()
            if self._fetched_at is None or now - self._fetched_at >= REFRESH_SECONDS:
                self._fetched_at = now
                try:
                    peers = tuple(sorted(set(self.ledger.live_daemons()) | {self.id}))
                except HarvesterError as exc:  # keep the last split; the cycle reports the rest
                    log.warning("cannot read the live replicas: %s", exc)
                    peers = self._peers
                if peers != self._peers:
                    log.info(
                        "%d live replica(s) of %s: this one collects its share of the jobs",
                        len(peers),
                        self.ledger.controller,
                    )
                    self._peers = peers
            return self._peers
