"""This process as a replica of its controller: registered in the ledger under a uuid,
and, for a daemon, the active replica or a standby, through the controller's lease.

One thread, the keeper, does all of it in short transactions, every third of an interval: the
heartbeat (so that a one-off run's or a dead replica's claims are told apart), the lease's renewal
while active, an attempt to take it while standby. Nothing else waits on it: whether this replica
may start a request is :meth:`Membership.active`, a comparison with a deadline on this host's
monotonic clock, which the keeper pushes forward after each renewal. The deadline falls well
before the lease's expiry on the database's clock (one interval before it, counted from the moment
the renewal was *sent*), so a replica that cannot renew stops starting requests before any other
can take over; the epoch on its writes (the ledger's fence) refuses whatever it had in flight.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from harvester.ledger import Fence, Ledger
from harvester.ledger.replicas import new_replica_id

log = logging.getLogger(__name__)

BEATS_PER_INTERVAL = 3
"""The keeper's rounds per interval (heartbeat, renewal or takeover attempt)."""
LEASE_INTERVALS = 2.5
"""The lease runs this many intervals past its last renewal: a standby takes over at most
LEASE_INTERVALS + 1/BEATS_PER_INTERVAL intervals after the active replica stopped renewing."""
LEAVE_SECONDS = 3.0
"""How long a stopping replica tries to hand its lease over and leave the registry."""
MARGIN_INTERVALS = 1.0
"""The active replica steps down this long before its lease could expire: room for a renewal in
flight and for this host's clock running at another rate than the database's."""


class Membership:
    """Registered by :meth:`join`, kept alive by its keeper thread, gone after :meth:`leave`.
    A daemon (``kind`` "daemon") contends for its controller's lease; other kinds never do and are
    never fenced (a ``catch-up`` or ``run --once`` beside the daemons relies on claims)."""

    def __init__(
        self,
        ledger: Ledger,
        kind: str,
        interval_seconds: float,
    ) -> None:
        self.ledger = ledger
        self.kind = kind
        self.interval = float(interval_seconds)
        self.id = new_replica_id()
        self.contends = kind == "daemon"
        self.ttl = timedelta(seconds=LEASE_INTERVALS * self.interval)
        self._listeners: list[Callable[[bool], None]] = []
        self._unlock: Callable[[], None] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._epoch = 0  # 0: not active
        self._deadline = 0.0  # time.monotonic() until which an active replica may act
        self._failing: set[str] = set()  # kinds of database failure already logged
        if self.contends:
            ledger.fence = Fence(self.id, 0)  # a standby's writes are refused

    # -- joining and leaving ----------------------------------------------------------------------

    def join(self) -> None:
        """Register; a daemon first takes the SQLite ledger's daemon lock (ConfigError when
        another daemon holds it; a no-op on PostgreSQL), then tries the lease once, so that a
        lone daemon is active from its first cycle."""
        if self.kind == "daemon":
            self._unlock = self.ledger.hold_daemon_lock()
        try:
            self.ledger.register(self.id, self.kind, self.interval)
        except BaseException:
            self._release_lock()
            raise
        if self.contends:
            self._round()
        self._thread = threading.Thread(target=self._keep, name="lease-keeper", daemon=True)
        self._thread.start()

    def leave(self) -> None:
        """Stop the keeper, hand the lease over and leave the registry: a courtesy that may take
        LEAVE_SECONDS at most (a database out of reach must not hold up a stop; the others then
        find this replica gone after 3 intervals)."""
        self._stop.set()
        if self._thread is not None:  # at once, unless a round is in a database call
            self._thread.join(timeout=1.0)
        epoch = self._epoch
        self._step_down(None)

        def courtesy() -> None:
            try:
                if epoch:
                    self.ledger.release_lease(self.id, epoch)  # a standby takes over at once
                self.ledger.deregister(self.id)
            except Exception as exc:  # noqa: BLE001 - the others find us gone anyway
                log.warning("could not leave the replica registry cleanly: %s", exc)

        leaving = threading.Thread(target=courtesy, name="leave", daemon=True)
        leaving.start()
        leaving.join(LEAVE_SECONDS)
        self._release_lock()

    def _release_lock(self) -> None:
        if self._unlock is not None:
            self._unlock()
            self._unlock = None

    # -- the role -----------------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether this replica may start a request now: a one-off run always; a daemon while
        it holds the lease and its own deadline has not passed."""
        if not self.contends:
            return True
        return self._epoch > 0 and time.monotonic() < self._deadline

    @property
    def role(self) -> str:
        return "active" if self.active else "standby"

    def listen(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(active)`` whenever this replica becomes active or steps down."""
        self._listeners.append(listener)

    def wait_active(self, timeout: float, stop: threading.Event) -> bool:
        """Wait up to ``timeout`` seconds (or until ``stop``) to be active: the daemon's loop, as
        a standby, so that a takeover's first cycle starts at once, not at the next tick."""
        deadline = time.monotonic() + timeout
        while not self.active and not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            stop.wait(min(left, 0.1))
        return self.active

    def owner(self) -> str:
        """An owner for one deliverer's claims: this replica's id, then the deliverer's."""
        return f"{self.id}/{uuid.uuid4().hex[:8]}"

    # -- the keeper -----------------------------------------------------------------------------------

    def _keep(self) -> None:
        while not self._stop.wait(self.interval / BEATS_PER_INTERVAL):
            self._round()

    def _round(self) -> None:
        """One round: never raises, whatever the database does (a read-only failover, a full
        disk, a cut network, an exhausted pool): a failure is logged once per kind and tried
        again next round; while it lasts, the deadline runs out and the replica steps down."""
        try:
            self.ledger.heartbeat(self.id, self.kind, self.interval)
            if self.contends:
                self._lease_round()
            if self._failing:
                log.warning("the ledger answers again; the replica keeper goes on")
                self._failing.clear()
        except Exception as exc:  # noqa: BLE001 - the keeper must outlive every failure
            kind = type(exc).__name__
            if kind not in self._failing:
                self._failing.add(kind)
                log.warning(
                    "replica keeper: the ledger cannot be used (%s); retrying every %.1f s%s",
                    exc,
                    self.interval / BEATS_PER_INTERVAL,
                    "; this replica stops before its lease can expire" if self._epoch else "",
                )
        if self._epoch and time.monotonic() >= self._deadline:
            self._step_down("its lease could not be renewed in time")

    def _lease_round(self) -> None:
        sent = time.monotonic()  # the deadline counts from here, not from the answer
        if self._epoch:
            if self.ledger.renew_lease(self.id, self._epoch, self.ttl):
                self._extend(sent)
                return
            self._step_down("another replica holds the lease now")
            return
        epoch = self.ledger.acquire_lease(self.id, self.ttl)
        if epoch is None:
            return
        self._extend(sent)
        self._epoch = epoch
        self.ledger.fence = Fence(self.id, epoch)
        log.warning(
            "this replica is now the active one of %s (lease epoch %d)",
            self.ledger.controller,
            epoch,
        )
        self._notify(True)
        released = self.ledger.release_dead_claims(active=self.id)
        if released:
            log.warning("%d build(s) claimed by a former active replica are due again", released)

    def _extend(self, sent: float) -> None:
        self._deadline = sent + (LEASE_INTERVALS - MARGIN_INTERVALS) * self.interval

    def _step_down(self, why: str | None) -> None:
        if not self._epoch:
            return
        self._epoch = 0
        self._deadline = 0.0
        if self.contends:
            self.ledger.fence = Fence(self.id, 0)
        if why is not None:
            log.warning("this replica steps down to standby: %s", why)
        self._notify(False)

    def _notify(self, active: bool) -> None:
        for listener in self._listeners:
            listener(active)
