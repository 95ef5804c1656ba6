"""Several processes on one ledger, real harvester processes: controllers whose
job names collide, processes migrating an empty database at once, a second daemon on one SQLite
ledger, a catch-up beside a daemon. Replicas of one controller: test_replicas.py."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from harvester.demo import PIPELINE, Receiver, SimBuild, SimStage, Simulator
from harvester.ledger import Ledger
from tests.helpers import GUID, config_dict, controller_of, now_ms, spawn, wait_for
from tests.pgserver import create_database

pytestmark = pytest.mark.postgres

OTHER_GUID = "0b8e7d52-7a53-4d1e-8c3e-5f2a9d6b4c11"


def new_database(postgres_base: str) -> str:
    return create_database(postgres_base)


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def config_for(
    path: Path, sim: Simulator, receiver: Receiver, ledger_url: str, **sections: Any
) -> Path:
    jenkins = {"api_token": sim.api_token, **sections.pop("jenkins", {})}
    return write(
        path,
        config_dict(
            jenkins_url=sim.url,
            sei_url=receiver.url,
            ledger_url=ledger_url,
            jenkins=jenkins,
            **sections,
        ),
    )


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out + err


def test_two_controllers_with_the_same_job_names_each_deliver_their_own(
    tmp_path: Path, postgres_base: str
) -> None:
    url = new_database(postgres_base)
    started = now_ms() - 3_600_000
    with (
        Simulator() as one,
        Simulator() as two,
        Receiver(token="sei-secret-token", instances={GUID, OTHER_GUID}) as receiver,
    ):
        for sim in (one, two):
            # The same names, numbers and start times on both: a controller restored from the
            # other's backup, say.
            sim.add("deploy-prod").builds = [SimBuild(n, started + n * 1000) for n in range(1, 8)]
            sim.add("folder/app", PIPELINE).builds = [
                SimBuild(n, started + n * 1000, stages=[SimStage("Build")]) for n in range(1, 7)
            ]
        first = config_for(tmp_path / "one.yaml", one, receiver, url, jenkins={"name": "ci-east"})
        second = config_for(
            tmp_path / "two.yaml", two, receiver, url, sei={"instance_guid": OTHER_GUID}
        )
        procs = [spawn(first, "run", "--once"), spawn(second, "run", "--once")]
        for proc in procs:
            code, output = finish(proc)
            assert code == 0, output
            assert "Traceback" not in output
        second_name = controller_of(two)
        by_instance = Counter(
            (body["instance_guid"], body["job_full_name"]) for body in receiver.accepted()
        )
    assert len(receiver.accepted()) == 26  # every build of both, each once
    assert by_instance == {
        (GUID, "deploy-prod"): 7,
        (GUID, "folder/app"): 6,
        (OTHER_GUID, "deploy-prod"): 7,
        (OTHER_GUID, "folder/app"): 6,
    }
    ledger = Ledger.open(url)
    assert ledger.controllers() == sorted(["ci-east", second_name])
    ledger.close()
    listed = spawn(first, "ledger", "list", "--controller", "ci-east", "--json")
    out, err = listed.communicate(timeout=30)
    assert listed.returncode == 0, err
    rows = json.loads(out)
    assert len(rows) == 13 and {r["controller"] for r in rows} == {"ci-east"}
    shown = spawn(first, "ledger", "show", "deploy-prod", "1")
    code, output = finish(shown)
    assert code == 2 and "2 controllers" in output and "--controller" in output


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_processes_starting_together_on_an_empty_database_all_migrate(
    tmp_path: Path, postgres_base: str, backend: str
) -> None:
    for attempt in range(4):
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path / f'm{attempt}.db'}"
        else:
            url = new_database(postgres_base)
        config = write(tmp_path / f"c{attempt}.yaml", {"ledger": {"url": url}})
        procs = [spawn(config, "db", "upgrade") for _ in range(3)]
        for proc in procs:
            code, output = finish(proc)
            assert code == 0, output
            assert "Traceback" not in output and "up to date" in output
        ledger = Ledger.open_to_read(url)
        assert ledger is not None  # at head: nothing left to migrate
        ledger.close()


def test_a_second_daemon_on_one_sqlite_ledger_is_refused(tmp_path: Path) -> None:
    with (
        Simulator() as sim,
        Receiver(token="sei-secret-token", instances={GUID}) as receiver,
    ):
        sim.add("app").builds = [SimBuild(1, now_ms())]
        url = f"sqlite:///{tmp_path / 'l.db'}"
        config = config_for(
            tmp_path / "c.yaml", sim, receiver, url, harvest={"interval_seconds": 1}
        )
        daemon = spawn(config, "run")
        try:
            assert wait_for(lambda: len(receiver.accepted()) == 1)
            second = spawn(config, "run")
            code, output = finish(second, timeout=30)
            assert code == 2, output
            assert "ledger.url" in output and "PostgreSQL" in output and "Traceback" not in output
            # The one-off commands still run beside the daemon.
            for args in (("run", "--once"), ("ledger", "stats"), ("check",)):
                code, output = finish(spawn(config, *args), timeout=30)
                assert code == 0, (args, output)
        finally:
            daemon.send_signal(signal.SIGTERM)
            code, output = finish(daemon, timeout=15)
        assert code == 0, output

        # A daemon killed outright leaves no lock behind: the next one starts.
        def cycles() -> int:
            return sim.counts["root"]  # a discovery: the daemon is in its loop

        before = cycles()
        daemon = spawn(config, "run")
        assert wait_for(lambda: cycles() > before)
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=10)
        before = cycles()
        again = spawn(config, "run")
        assert wait_for(lambda: cycles() > before or again.poll() is not None)
        assert again.poll() is None, again.communicate()
        again.send_signal(signal.SIGTERM)
        assert finish(again, timeout=15)[0] == 0


def test_catch_up_beside_a_daemon_with_a_throttling_receiver_sends_each_build_once(
    tmp_path: Path, postgres_base: str
) -> None:
    url = new_database(postgres_base)
    start = now_ms() - 5 * 86_400_000
    with (
        Simulator() as sim,
        Receiver(token="sei-secret-token", instances={GUID}, limit=(25, 1.0)) as receiver,
    ):
        for j in range(5):
            sim.add(f"job-{j}").builds = [SimBuild(n, start + n * 3_600_000) for n in range(1, 21)]
        config = config_for(
            tmp_path / "c.yaml",
            sim,
            receiver,
            url,
            sei={"max_requests_per_minute": 1200},
            harvest={"interval_seconds": 1, "since": "3d"},
        )
        daemon = spawn(config, "run")
        try:
            time.sleep(1.0)
            code, output = finish(spawn(config, "catch-up", "--since", "6d"), timeout=90)
            assert code == 0, output
            assert wait_for(lambda: len(set(receiver.accepted_keys())) >= 100, timeout=60)
        finally:
            daemon.send_signal(signal.SIGTERM)
            code, output = finish(daemon, timeout=20)
        assert code == 0, output
        keys = Counter(receiver.accepted_keys())
    assert set(keys) == {(f"job-{j}", n) for j in range(5) for n in range(1, 21)}
    assert max(keys.values()) == 1  # no duplicate, though both collected and delivered
