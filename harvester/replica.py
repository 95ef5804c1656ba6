"""This process as a replica of its controller (CONTRACT §7): registered in the ledger under a
uuid, heartbeating from a thread of its own (a long cycle or catch-up never looks dead), and, for a
daemon, collecting only the jobs that rendezvous hashing gives it among the live daemons."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from types import TracebackType

from harvester.collect.split import owner_of
from harvester.errors import HarvesterError
from harvester.ledger import Ledger
from harvester.ledger.replicas import new_replica_id

log = logging.getLogger(__name__)

# Beats per interval: a replica is dead after 3 intervals, so a few missed beats (a database
# blip) never make a live one look dead.
BEATS_PER_INTERVAL = 3


class Membership:
    """A context manager: registered on entry, heartbeating meanwhile, gone on exit (the other
    replicas then take its jobs at their next cycle, without waiting 3 intervals)."""

    def __init__(
        self, ledger: Ledger, kind: str, interval_seconds: float, *, exclusive: bool = False
    ) -> None:
        self.ledger = ledger
        self.exclusive = exclusive  # a daemon on SQLite: refused when another one runs
        self._unlock: Callable[[], None] | None = None
        self.kind = kind
        self.interval = float(interval_seconds)
        self.id = new_replica_id()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._peers: tuple[str, ...] = (self.id,)

    def __enter__(self) -> Membership:
        if self.exclusive:
            self._unlock = self.ledger.hold_daemon_lock()
        self.ledger.register(self.id, self.kind, self.interval)
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.ledger.deregister(self.id)
        except HarvesterError as exc:  # leaving is a courtesy: the others find us dead anyway
            log.warning("could not leave the replica registry: %s", exc)
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

    def owner(self) -> str:
        """An owner for one deliverer's claims: this replica's id, then the deliverer's."""
        return f"{self.id}/{uuid.uuid4().hex[:8]}"

    def jobs(self) -> Callable[[str], bool] | None:
        """Which jobs this replica collects this cycle: for a daemon, those it wins among the live
        daemons of its controller; None (every job) for a one-off run."""
        if self.kind != "daemon":
            return None
        live = set(self.ledger.live_daemons()) | {self.id}
        peers = tuple(sorted(live))
        if peers != self._peers:
            log.info(
                "%d live replica(s) of %s: this one collects its share of the jobs",
                len(peers),
                self.ledger.controller,
            )
            self._peers = peers
        me = self.id
        return lambda job: owner_of(job, peers) == me
