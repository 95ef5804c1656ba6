"""The replica registry and the lease. Every process that collects or delivers for a
controller registers itself with a heartbeat written on the database's clock; one dead for 3 of its
intervals has its claims released. Daemons of one controller elect one **active** replica through
the lease: holder, epoch (grows at every takeover), expiry on the database's clock. Each call is
one short transaction; none is held while anything else happens.

Claims are held by an owner of the form ``<replica id>/<deliverer id>``: the part before the
slash says which registered process holds it.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, delete, select, update

from harvester.ledger.base import LedgerBase
from harvester.ledger.records import utc
from harvester.ledger.schema import BuildRow, LeaseRow, ReplicaRow

DEAD_AFTER_INTERVALS = 3


@dataclass(frozen=True, slots=True)
class Replica:
    id: str
    kind: str
    host: str
    pid: int
    heartbeat_at: datetime
    alive: bool


def new_replica_id() -> str:
    # Not host:pid: the pid is 1 in every container, and hosts are re-used.
    return str(uuid.uuid4())


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="ascii").strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str:
    # Field 22 of /proc/PID/stat, after the command name (which may hold spaces) in parentheses.
    stat = _read(f"/proc/{pid}/stat")
    return stat.rpartition(")")[2].split()[19] if stat else ""


def process_identity(pid: int | None = None) -> str:
    """This process, told apart from every other one: the boot (random per boot, shared by the
    host's containers), the pid namespace (one per container), the pid and its start time (a
    pid is reused). Empty parts where /proc is not there."""
    pid = os.getpid() if pid is None else pid
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        namespace = str(Path("/proc/self/ns/pid").readlink())
    except OSError:
        namespace = ""
    return f"{boot}/{namespace}/{pid}/{_start_time(pid)}"


def process_gone(identity: str, here: str) -> bool:
    """Whether a registered process is certainly gone: it ran where this one (``here``, its
    process_identity) runs, same boot and pid namespace, and its pid is no longer that process.
    Anywhere else only heartbeats tell."""
    boot, namespace, pid, started = [*identity.split("/", 3), "", "", ""][:4]
    here_boot, here_namespace, _, _ = here.split("/", 3)
    if not boot or not namespace or not started or not pid.isdigit():
        return False
    if (boot, namespace) != (here_boot, here_namespace):
        return False
    return _start_time(int(pid)) != started


def replica_of(owner: str) -> str:
    """The replica that holds a claim (see the module's docstring)."""
    return owner.split("/", 1)[0]


class Replicas(LedgerBase):
    def register(self, replica_id: str, kind: str, interval_seconds: float) -> None:
        """Record this process as a live replica of its controller, or say again that it is (a
        replica declared dead while partitioned comes back the same way)."""
        with self._write() as connection:
            now = self._dialect.clock(connection)
            values = {
                "id": replica_id,
                "controller": self._me,
                "kind": kind,
                "host": socket.gethostname()[:255],
                "pid": os.getpid(),
                "process": process_identity(),
                "interval_seconds": interval_seconds,
                "started_at": now,
                "heartbeat_at": now,
            }
            statement = self._dialect.insert(ReplicaRow).values(**values)
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["id"], set_={"heartbeat_at": statement.excluded.heartbeat_at}
                )
            )

    def heartbeat(self, replica_id: str, kind: str, interval_seconds: float) -> None:
        with self._write() as connection:
            beat = connection.execute(
                update(ReplicaRow)
                .where(ReplicaRow.id == replica_id)
                .values(heartbeat_at=self._dialect.clock(connection))
            ).rowcount
        if not beat:  # removed as dead by another replica: back again
            self.register(replica_id, kind, interval_seconds)

    def deregister(self, replica_id: str) -> None:
        """A replica that stops cleanly leaves at once: the others take its jobs next cycle."""
        with self._write() as connection:
            connection.execute(delete(ReplicaRow).where(ReplicaRow.id == replica_id))

    def replicas(self) -> list[Replica]:
        """This controller's registered replicas, alive or not, oldest first."""
        with self._read() as connection:
            return self._replicas(connection)

    def _replicas(self, connection: Connection) -> list[Replica]:
        now = self._dialect.clock(connection)
        rows = connection.execute(
            select(ReplicaRow)
            .where(ReplicaRow.controller == self._me)
            .order_by(ReplicaRow.started_at, ReplicaRow.id)
        ).all()
        here = process_identity()
        found = []
        for row in rows:
            beat = utc(row.heartbeat_at)
            assert beat is not None
            limit = timedelta(seconds=DEAD_AFTER_INTERVALS * row.interval_seconds)
            alive = now - beat <= limit and not process_gone(row.process, here)
            found.append(Replica(row.id, row.kind, row.host, row.pid, beat, alive))
        return found

    # -- the lease --------------------------------------------------------------------------------

    def acquire_lease(self, replica_id: str, ttl: timedelta) -> int | None:
        """Take this controller's lease when nobody holds it or it has expired: returns the new
        epoch (one more than the last), or None while another replica's lease runs."""
        me = self._me
        with self._write() as connection:
            connection.execute(
                self._dialect.insert(LeaseRow)
                .values(controller=me, holder=None, epoch=0, expires_at=None)
                .on_conflict_do_nothing(index_elements=["controller"])
            )
            row = connection.execute(
                select(LeaseRow.holder, LeaseRow.epoch, LeaseRow.expires_at)
                .where(LeaseRow.controller == me)
                .with_for_update()
            ).one()
            now = self._dialect.clock(connection)
            expires = utc(row.expires_at)
            running = expires is not None and expires > now
            if running and row.holder not in (None, replica_id):
                return None
            epoch = int(row.epoch) + 1
            connection.execute(
                update(LeaseRow)
                .where(LeaseRow.controller == me)
                .values(holder=replica_id, epoch=epoch, expires_at=now + ttl)
            )
            return epoch

    def renew_lease(self, replica_id: str, epoch: int, ttl: timedelta) -> bool:
        """Extend the lease ``replica_id`` holds at ``epoch``; False when it does not hold it any
        more (expired and taken, or expired: then it must be acquired again, at a new epoch)."""
        with self._write() as connection:
            now = self._dialect.clock(connection)
            renewed = connection.execute(
                update(LeaseRow)
                .where(
                    LeaseRow.controller == self._me,
                    LeaseRow.holder == replica_id,
                    LeaseRow.epoch == epoch,
                    LeaseRow.expires_at > now,
                )
                .values(expires_at=now + ttl)
            ).rowcount
        return bool(renewed)

    def release_lease(self, replica_id: str, epoch: int) -> None:
        """A replica that stops cleanly lets a standby take over at its next try."""
        with self._write() as connection:
            connection.execute(
                update(LeaseRow)
                .where(
                    LeaseRow.controller == self._me,
                    LeaseRow.holder == replica_id,
                    LeaseRow.epoch == epoch,
                )
                .values(expires_at=self._dialect.clock(connection))
            )

    def lease_holder(self) -> tuple[str | None, int]:
        """Who holds this controller's lease now (None: nobody, or expired), and its epoch."""
        with self._read() as connection:
            row = connection.execute(
                select(LeaseRow.holder, LeaseRow.epoch, LeaseRow.expires_at).where(
                    LeaseRow.controller == self._me
                )
            ).one_or_none()
            if row is None:
                return None, 0
            expires = utc(row.expires_at)
            running = expires is not None and expires > self._dialect.clock(connection)
            return (row.holder if running else None), int(row.epoch)

    def release_dead_claims(self, active: str | None = None) -> int:
        """Release the claims of owners that are not live replicas of this controller (killed,
        partitioned, or from before the registry), so that their rows are delivered by the
        others; with ``active`` (a daemon that just took the lease), also those of every other
        daemon: a former active replica's rows in flight are the new one's to send (at worst
        twice). Dead replicas leave the registry. Returns how many rows were released. Live
        one-off runs keep theirs: a catch-up beside the daemon must not re-send its rows."""
        with self._write() as connection:
            replicas = self._replicas(connection)
            keep = {
                r.id
                for r in replicas
                if r.alive and (active is None or r.id == active or r.kind != "daemon")
            }
            dead = [r.id for r in replicas if not r.alive]
            if dead:
                connection.execute(delete(ReplicaRow).where(ReplicaRow.id.in_(dead)))
            owners = connection.execute(
                select(BuildRow.claimed_by)
                .where(
                    BuildRow.controller == self._me,
                    BuildRow.status == "pending",
                    BuildRow.claimed_by.is_not(None),
                )
                .distinct()
            ).scalars()
            gone = [o for o in owners if o is not None and replica_of(o) not in keep]
            if not gone:
                return 0
            result = connection.execute(
                update(BuildRow)
                .where(BuildRow.controller == self._me, BuildRow.claimed_by.in_(gone))
                .values(claimed_until=None, claimed_by=None)
            )
            return result.rowcount or 0
