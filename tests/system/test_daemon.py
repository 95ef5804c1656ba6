"""The daemon and the other commands as a user runs them: real subprocesses, real signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter

import pytest

from harvester.cli.main import main
from harvester.demo import PIPELINE, Reply, SimBuild, SimStage, Simulator
from harvester.ledger import Ledger
from tests.helpers import loopback_config, now_ms, spawn, wait_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def sim() -> Simulator:
    with Simulator() as simulator:
        yield simulator


def test_daemon_delivers_builds_that_finish_while_it_runs_and_stops_on_sigterm(
    tmp_path, sim, receiver
) -> None:
    job = sim.add("app", PIPELINE)
    job.builds = [SimBuild(1, now_ms() - 60_000, stages=[SimStage("Build")])]
    port = free_port()
    config = loopback_config(
        sim,
        receiver,
        tmp_path,
        harvest={"interval_seconds": 1},
        server={"listen": f"127.0.0.1:{port}"},
    )
    proc = spawn(config, "run")
    try:
        assert wait_for(lambda: ("app", 1) in receiver.accepted_keys())
        running = SimBuild(2, now_ms(), in_progress=True, result=None, stages=[SimStage("Build")])
        with sim.lock:
            job.builds.append(running)
        time.sleep(1.5)
        assert ("app", 2) not in receiver.accepted_keys()  # held back while running
        with sim.lock:
            running.finish("SUCCESS")
        # (how fast is a benchmark figure, not a test assertion; here: that it arrives at all)
        assert wait_for(lambda: ("app", 2) in receiver.accepted_keys())
        for probe, status in (("healthz", "ok"), ("readyz", "ok"), ("livez", "alive")):
            url = f"http://127.0.0.1:{port}/{probe}"
            with urllib.request.urlopen(url, timeout=5) as response:
                assert response.status == 200
                assert json.loads(response.read())["status"] == status

        def metrics() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                return str(answer.read().decode())

        # The ledger's row counts are read at the end of the cycle that delivered build 2,
        # which may still be finishing when the receiver has it.
        assert wait_for(lambda: 'harvester_ledger_rows{status="sent"} 2.0' in metrics())
        text = metrics()
        assert "harvester_builds_collected_total 2.0" in text
        assert 'harvester_deliveries_total{outcome="sent"} 2.0' in text
        assert 'harvester_jenkins_requests_total{kind="discovery",status_class="2xx"}' in text
        assert "harvester_cycle_duration_seconds_bucket" in text
        assert "harvester_pending_rows 0.0" in text
        assert 'harvester_build_info{version="' in text
        assert "process_resident_memory_bytes" in text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    _, err = proc.communicate()
    assert "SIGTERM received" in err
    assert Counter(receiver.accepted_keys()) == {("app", 1): 1, ("app", 2): 1}


def test_healthz_turns_unhealthy_when_cycles_fail(tmp_path, sim, receiver) -> None:
    sim.add("app").builds = [SimBuild(1, now_ms())]
    port = free_port()
    config = loopback_config(
        sim,
        receiver,
        tmp_path,
        harvest={"interval_seconds": 0.3},
        server={"listen": f"127.0.0.1:{port}"},
    )
    receiver.default = Reply(500, "down")
    proc = spawn(config, "run")
    try:

        def unhealthy() -> bool:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            except urllib.error.HTTPError as exc:
                # 503 at first because no cycle finished in time, then naming the webhook
                return exc.code == 503 and "webhook" in json.loads(exc.read()).get("reason", "")
            except OSError:
                return False
            return False

        assert wait_for(unhealthy, 30)
        # Not ready, but alive: a liveness probe must not restart it for a receiver's outage.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=5) as response:
            assert response.status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0


def test_sigkill_mid_delivery_loses_nothing(tmp_path, sim, receiver) -> None:
    job = sim.add("bulk")
    job.builds = [SimBuild(n, now_ms() - (100 - n) * 1000) for n in range(1, 31)]
    receiver.default = Reply(202, delay_seconds=0.1)
    config = loopback_config(sim, receiver, tmp_path, sei={"max_concurrency": 2})
    proc = spawn(config, "run", "--once")
    assert wait_for(lambda: len(receiver.received) >= 5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    got_before = len(receiver.received)
    assert got_before < 30, "the kill came too late to test anything"
    receiver.default = Reply(202)
    second = spawn(config, "run", "--once")
    assert second.wait(timeout=60) == 0, second.communicate()
    keys = Counter(receiver.accepted_keys())
    assert set(keys) == {("bulk", n) for n in range(1, 31)}  # nothing lost
    duplicates = sum(count - 1 for count in keys.values())
    assert duplicates <= 2  # only builds in flight at the kill (sei.max_concurrency)


def test_preview_prints_the_payload_and_writes_nothing(tmp_path, sim, receiver, capsys) -> None:
    sim.add("mbp/feature%2Fx", PIPELINE).builds = [
        SimBuild(3, now_ms(), stages=[SimStage("Build")])
    ]
    config = loopback_config(sim, receiver, tmp_path)
    assert main(["--config", str(config), "preview", "mbp/feature/x", "3"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["job_full_name"] == "mbp/feature/x"
    assert payload["job_run"]["stages"][0]["displayName"] == "Build"
    assert receiver.received == []
    assert not (tmp_path / "l.db").exists()  # the ledger is not even created
    assert main(["--config", str(config), "preview", "nope", "1"]) == 2


def test_check(tmp_path, sim, receiver, capsys) -> None:
    sim.add("p", PIPELINE).builds = [SimBuild(1, now_ms(), stages=[SimStage("Build")])]
    config = loopback_config(sim, receiver, tmp_path)
    assert main(["--config", str(config), "check"]) == 0
    out = capsys.readouterr().out
    for line in ("ok   ledger", "ok   jenkins", "ok   wfapi", "ok   webhook", "ok   instance"):
        assert line in out
    assert "secret-token" not in out and sim.api_token not in out
    assert receiver.accepted() == []  # nothing stored at the receiver: only the {} probe
    assert [r.body for r in receiver.received] == [{}]
    # A ledger that does not exist yet is not created: its directory is checked instead.
    assert f"ok   ledger: {tmp_path / 'l.db'} does not exist yet" in out
    assert not list(tmp_path.glob("l.db*"))
    ledger = Ledger.open(
        f"sqlite:///{tmp_path / 'l.db'}"
    )  # one that exists: opened, written, rolled back
    ledger.close()
    assert main(["--config", str(config), "check"]) == 0
    assert "l.db opens and can be written" in capsys.readouterr().out
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.db'}")
    assert ledger.entries() == [] and ledger.stats().last_successful_cycle_at is None
    ledger.close()
    missing = loopback_config(
        sim, receiver, tmp_path, "missing.yaml", ledger={"url": f"sqlite:///{tmp_path}/no/l.db"}
    )
    assert main(["--config", str(missing), "check"]) == 1
    assert f"the directory {tmp_path}/no does not exist" in capsys.readouterr().out
    sim.wfapi_installed = False
    assert main(["--config", str(config), "check"]) == 1
    assert "FAIL wfapi" in capsys.readouterr().out
    bad = loopback_config(sim, receiver, tmp_path, "bad.yaml", jenkins={"api_token": "wrong"})
    assert main(["--config", str(bad), "check"]) == 3
    assert "rejected the credentials" in capsys.readouterr().out


def test_demo_runs_with_no_config(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARVESTER_")}
    result = subprocess.run(
        [sys.executable, "-m", "harvester", "demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "7 collected, 7 delivered" in result.stdout
    assert '"job_run"' in result.stdout
    assert list(tmp_path.iterdir()) == []  # left nothing behind
