"""The replica registry (CONTRACT §7): every process that collects or delivers for a controller
registers itself with a heartbeat written on the database's clock. A replica is dead after 3 of
its intervals without one; its claims are then released, and the live replicas split its jobs.

Claims are held by an owner of the form ``<replica id>/<deliverer id>``: the part before the
slash says which registered process holds it.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, delete, select, update

from harvester.ledger.base import LedgerBase
from harvester.ledger.records import utc
from harvester.ledger.schema import BuildRow, NoteRow, ReplicaRow

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

    def live_daemons(self) -> list[str]:
        """The ids of this controller's live daemon replicas: they split the jobs among them."""
        return [r.id for r in self.replicas() if r.alive and r.kind == "daemon"]

    def shared_value(self, key: str, max_age: timedelta, compute: Callable[[], str]) -> str:
        """A value that one replica computes and the others reuse while it is younger than
        ``max_age`` (by the database's clock): the job list, which every replica would
        otherwise ask Jenkins for each cycle. The row is locked while ``compute`` runs, so a
        replica that comes at the same moment waits and reuses it. For PostgreSQL: on SQLite
        the lock would stop every writer, and there is only one daemon there anyway."""
        me = self._me
        with self._write() as connection:
            connection.execute(
                self._dialect.insert(NoteRow)
                .values(controller=me, key=key, value="")
                .on_conflict_do_nothing(index_elements=["controller", "key"])
            )
            where = (NoteRow.controller == me, NoteRow.key == key)
            stored = connection.execute(
                self._dialect.lock_row(select(NoteRow.value).where(*where))
            ).scalar_one()
            now = self._dialect.clock(connection)
            stamp, _, value = str(stored).partition("\n")
            if stamp and now - datetime.fromisoformat(stamp) < max_age:
                return value
            value = compute()
            connection.execute(
                update(NoteRow).where(*where).values(value=f"{now.isoformat()}\n{value}")
            )
            return value

    def release_dead_claims(self) -> int:
        """Release the claims of owners that are not live replicas of this controller (killed,
        partitioned, or from before the registry), so that their rows are delivered by the
        others; and remove dead replicas from the registry. Returns how many rows were
        released. Live owners keep theirs: a catch-up beside the daemon must not re-send the
        daemon's rows in flight."""
        with self._write() as connection:
            replicas = self._replicas(connection)
            live = {r.id for r in replicas if r.alive}
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
            gone = [o for o in owners if o is not None and replica_of(o) not in live]
            if not gone:
                return 0
            result = connection.execute(
                update(BuildRow)
                .where(BuildRow.controller == self._me, BuildRow.claimed_by.in_(gone))
                .values(claimed_until=None, claimed_by=None)
            )
            return result.rowcount or 0
