"""Replicas for availability: two daemons of one controller on one PostgreSQL ledger,
one active through the lease, the other standby. Real processes, real signals, a real PostgreSQL;
each replica reaches Jenkins, the webhook (and, where a test partitions it, PostgreSQL) through a
loopback proxy of its own, so the test sees which replica sends what, and can cut one off."""

from __future__ import annotations

import itertools
import json
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy
import yaml

from harvester.demo import PIPELINE, Receiver, SimBuild, SimStage, Simulator
from harvester.ledger import Ledger
from tests.helpers import GUID, TcpProxy, config_dict, now_ms, spawn, wait_for
from tests.pgserver import create_database

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]

INTERVAL = 1.0
JOBS = 4


@dataclass
class Replica:
    name: str
    config: Path
    jenkins: TcpProxy
    webhook: TcpProxy
    database: TcpProxy | None
    port: int  # its server.listen: the probes and /metrics
    process: subprocess.Popen[str] | None = None

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as got:
                return got.status, got.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def start(self) -> None:
        self.process = spawn(self.config, "run")

    def signal(self, which: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(which)

    def stop(self) -> str:
        """SIGTERM; its exit code must be 0 (within 10 s); returns what it printed."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
        self.process.send_signal(signal.SIGTERM)
        out, err = self.process.communicate(timeout=20)
        assert self.process.returncode == 0, (out + err)[-8000:]
        return out + err

    def sent(self) -> int:
        """Bytes this replica sent to Jenkins and to the webhook: grows with every request."""
        return self.jenkins.upstream_bytes + self.webhook.upstream_bytes


@dataclass
class Cluster:
    sim: Simulator
    receiver: Receiver
    url: str
    replicas: list[Replica] = field(default_factory=list)
    next_number: dict[str, int] = field(default_factory=dict)

    def ledger(self) -> Ledger:
        return Ledger.open(self.url, controller="shared", migrate=False)

    def active(self) -> Replica | None:
        """The replica whose process holds the lease now."""
        ledger = self.ledger()
        try:
            holder, _ = ledger.lease_holder()
            pids = {r.id: r.pid for r in ledger.replicas()}
        finally:
            ledger.close()
        pid = pids.get(holder or "")
        return next((r for r in self.replicas if r.process and r.process.pid == pid), None)

    def registered(self) -> int:
        """How many replicas are in the registry (each joins once it runs)."""
        ledger = self.ledger()
        try:
            return len(ledger.replicas())
        finally:
            ledger.close()

    def wait_active(self, timeout: float = 30) -> Replica:
        assert wait_for(lambda: self.active() is not None, timeout=timeout)
        found = self.active()
        assert found is not None
        return found

    def finish_builds(self) -> list[tuple[str, int]]:
        """One new finished build on every job; returns their keys."""
        keys = []
        for j in range(JOBS):
            job = f"job-{j}"
            number = self.next_number[job]
            self.next_number[job] = number + 1
            self.sim.job(job).builds.append(SimBuild(number, now_ms(), stages=[SimStage("Build")]))
            keys.append((job, number))
        return keys

    def delivered(self, keys: list[tuple[str, int]]) -> bool:
        return set(keys) <= set(self.receiver.accepted_keys())

    def duplicates(self) -> int:
        return sum(count - 1 for count in Counter(self.receiver.accepted_keys()).values())


@contextmanager
def cluster(
    tmp_path: Path,
    postgres_base: str,
    *,
    partitionable: bool = False,
    builds: int = 3,
    interval: float = INTERVAL,
) -> Iterator[Cluster]:
    url = create_database(postgres_base)
    start = now_ms() - 3_600_000
    with Simulator() as sim, Receiver(token="sei-secret-token", instances={GUID}) as receiver:
        for j in range(JOBS):
            sim.add(f"job-{j}", PIPELINE).builds = [
                SimBuild(n, start + n * 1000, stages=[SimStage("Build")])
                for n in range(1, builds + 1)
            ]
        found = Cluster(
            sim, receiver, url, next_number={f"job-{j}": builds + 1 for j in range(JOBS)}
        )
        base, _, name = url.rpartition("/")
        port = int(base.rsplit(":", 1)[1])
        try:
            for index, label in enumerate(("a", "b")):
                jenkins, webhook = TcpProxy(sim.port), TcpProxy(receiver.port)
                database = TcpProxy(port) if partitionable and index == 0 else None
                ledger_url = (
                    url if database is None else f"{base.rsplit(':', 1)[0]}:{database.port}/{name}"
                )
                data = config_dict(
                    jenkins_url=f"http://127.0.0.1:{jenkins.port}/",
                    sei_url=receiver.url.replace(str(receiver.port), str(webhook.port)),
                    ledger_url=ledger_url,
                    jenkins={"api_token": sim.api_token, "name": "shared"},
                    harvest={"interval_seconds": interval, "since": "7d"},
                    sei={"timeout_seconds": 5},
                    server={"listen": f"127.0.0.1:{(port_of := _free_port())}"},
                )
                config = tmp_path / f"{label}.yaml"
                config.write_text(yaml.safe_dump(data), encoding="utf-8")
                found.replicas.append(Replica(label, config, jenkins, webhook, database, port_of))
            yield found
        finally:
            for replica in found.replicas:
                if replica.process is not None and replica.process.poll() is None:
                    replica.process.send_signal(signal.SIGCONT)
                    replica.process.kill()
                    replica.process.communicate(timeout=10)
                for proxy in (replica.jenkins, replica.webhook, replica.database):
                    if proxy is not None:
                        proxy.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_both(c: Cluster) -> tuple[Replica, Replica]:
    """The first replica, active once it delivered the history; then the second, standby."""
    first, second = c.replicas
    first.start()
    assert wait_for(lambda: len(set(c.receiver.accepted_keys())) >= JOBS * 3, timeout=30)
    assert c.wait_active() is first
    second.start()
    assert wait_for(lambda: c.registered() == 2, timeout=10)
    time.sleep(1.0)  # past its start-up, into its standby's loop
    return first, second


@pytest.mark.parametrize("where", ["discovery", "job"])
def test_a_replica_paused_mid_request_is_fenced_and_rejoins_as_standby(
    tmp_path: Path, postgres_base: str, where: str
) -> None:
    with cluster(tmp_path, postgres_base) as c:
        old, new = start_both(c)
        # The active replica's next cycle is stopped inside a slow request: the discovery, or a
        # new build's wfapi.
        before = old.jenkins.upstream_bytes
        if where == "discovery":
            c.sim.slow("/api/json", 4.0)
            slow_key = None
        else:
            slow_key = c.finish_builds()[0]
            c.sim.slow(f"/job/{slow_key[0]}/{slow_key[1]}/", 4.0)
        assert wait_for(lambda: old.jenkins.upstream_bytes > before, timeout=10)
        if where == "job":
            assert wait_for(
                lambda: any(p.startswith(f"/job/job-0/{slow_key[1]}/") for p in c.sim.paths),  # type: ignore[index]
                timeout=10,
            )
        time.sleep(0.2)  # the request is in flight
        old.signal(signal.SIGSTOP)
        paused = time.monotonic()
        c.sim.heal()
        later = c.finish_builds()
        assert wait_for(lambda: c.delivered(later), timeout=30)
        took = time.monotonic() - paused
        assert c.active() is new
        # Taken over within 3 intervals of the last renewal, then one cycle.
        assert took <= 3 * INTERVAL + 4, took
        # Woken up: the request it was in answers, and it starts no other, sends nothing.
        old.signal(signal.SIGCONT)
        time.sleep(0.5)
        sent = old.sent()
        again = c.finish_builds()
        assert wait_for(lambda: c.delivered(again), timeout=20)
        time.sleep(3 * INTERVAL)
        if old.sent() != sent:  # say why: what it logged
            raise AssertionError(f"the paused replica sent again: {old.stop()[-6000:]}")
        assert c.active() is new
        assert old.process is not None and old.process.poll() is None  # a standby now
        ledger = c.ledger()
        assert sorted(r.alive for r in ledger.replicas()) == [True, True]
        ledger.close()
        assert c.duplicates() == 0
        new.stop()
        output = old.stop()
        assert "steps down to standby" in output


def test_a_replica_cut_off_from_the_database_stops_before_its_lease_can_expire(
    tmp_path: Path, postgres_base: str
) -> None:
    with cluster(tmp_path, postgres_base, partitionable=True) as c:
        old, new = start_both(c)
        assert old.database is not None
        old.database.cut()
        cut = time.monotonic()
        later = c.finish_builds()
        assert wait_for(lambda: c.delivered(later), timeout=30)
        assert c.active() is new
        # Its last request started before the lease could expire (2.5 intervals after its
        # last renewal, at most a third of an interval before the cut).
        assert old.jenkins.last_upstream - cut < (2.5 - 1 / 3) * INTERVAL, (
            old.jenkins.last_upstream - cut
        )
        old.database.heal()
        time.sleep(0.5)
        sent = old.sent()
        again = c.finish_builds()
        assert wait_for(lambda: c.delivered(again), timeout=20)
        time.sleep(3 * INTERVAL)
        assert old.sent() == sent
        assert c.active() is new
        assert c.duplicates() <= 1  # a build in flight at the cut, at worst
        new.stop()
        old.stop()


def test_a_read_only_database_is_a_pause_not_a_crash(tmp_path: Path, postgres_base: str) -> None:
    with cluster(tmp_path, postgres_base) as c:
        first, second = start_both(c)
        name = c.url.rpartition("/")[2]
        admin = sqlalchemy.create_engine(
            f"{c.url.rpartition('/')[0]}/postgres", isolation_level="AUTOCOMMIT"
        )

        def set_read_only(on: bool) -> None:
            with admin.connect() as connection:
                value = "on" if on else "off"
                connection.exec_driver_sql(
                    f"ALTER DATABASE {name} SET default_transaction_read_only = {value}"
                )
                # As a failover does: every session is dropped, and the new ones read-only.
                connection.exec_driver_sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                )

        try:
            set_read_only(True)
            during = c.finish_builds()
            time.sleep(3 * INTERVAL)
        finally:
            set_read_only(False)
            admin.dispose()
        after = c.finish_builds()
        assert wait_for(lambda: c.delivered(during + after), timeout=30)
        assert c.wait_active() in (first, second)
        # Both keepers are alive: their heartbeats go on.
        ledger = c.ledger()
        beats = {r.id: r.heartbeat_at for r in ledger.replicas()}
        time.sleep(INTERVAL)
        assert all(r.heartbeat_at > beats[r.id] for r in ledger.replicas())
        ledger.close()
        assert c.duplicates() <= 1
        for replica in (first, second):
            assert "Traceback" not in replica.stop()


def test_a_killed_active_replica_is_taken_over(tmp_path: Path, postgres_base: str) -> None:
    with cluster(tmp_path, postgres_base) as c:
        old, new = start_both(c)
        old.signal(signal.SIGKILL)
        killed = time.monotonic()
        later = c.finish_builds()
        assert wait_for(lambda: c.delivered(later), timeout=30)
        assert time.monotonic() - killed <= 3 * INTERVAL + 4
        assert c.active() is new
        assert c.duplicates() <= 1
        new.stop()


def test_a_rolling_restart_leaves_no_gap_and_loses_nothing(
    tmp_path: Path, postgres_base: str
) -> None:
    # Two-second intervals: a process's own stop and start (about a second each) are not
    # intervals; in production an interval is a minute.
    interval = 2.0
    with cluster(tmp_path, postgres_base, interval=interval) as c:
        first, second = start_both(c)
        finished: list[tuple[str, int]] = []
        done = threading.Event()

        def builds_keep_finishing() -> None:
            while not done.wait(0.5):
                finished.extend(c.finish_builds())

        feeder = threading.Thread(target=builds_keep_finishing, daemon=True)
        feeder.start()
        try:
            for replica in (first, second):
                time.sleep(2 * interval)
                replica.stop()
                replica.start()
                # As a rolling restart does (a readiness probe): the next one is replaced only
                # once this one runs (registered, its keeper beating).
                assert wait_for(lambda: c.registered() == 2, timeout=30)
            time.sleep(2 * interval)
        finally:
            done.set()
            feeder.join()
        assert wait_for(lambda: c.delivered(finished), timeout=30)
        times = sorted(r.at for r in c.receiver.received if r.answered.startswith("2"))
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert max(gaps) <= 3 * interval, gaps
        assert c.duplicates() <= 2
        for replica in (first, second):
            replica.stop()


def test_a_standby_asks_jenkins_nothing(tmp_path: Path, postgres_base: str) -> None:
    # Two replicas cost Jenkins what one does: the standby makes no request (idle cycles).
    with cluster(tmp_path, postgres_base) as c:
        active, standby = start_both(c)
        time.sleep(2 * INTERVAL)
        before = (active.jenkins.upstream_bytes, standby.jenkins.upstream_bytes)
        c.sim.reset_counts()
        time.sleep(3 * INTERVAL)
        assert standby.jenkins.upstream_bytes == before[1]
        assert active.jenkins.upstream_bytes > before[0]
        assert set(c.sim.counts) == {"root"}  # idle cycles: one discovery each, the active's
        assert 2 <= c.sim.counts["root"] <= 4
        # Both answer their probes: the standby is ready, with its role, and says so in /metrics.
        for replica, role, gauge in ((active, "active", "1.0"), (standby, "standby", "0.0")):
            status, body = replica.get("/readyz")
            assert status == 200 and json.loads(body)["role"] == role, body
            assert replica.get("/livez")[0] == 200
            assert f"harvester_replica_active {gauge}" in replica.get("/metrics")[1]
        active.stop()
        standby.stop()
