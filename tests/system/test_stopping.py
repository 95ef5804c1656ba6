"""Stop discipline: SIGINT/SIGTERM sent to real `harvester` processes working against a
slow simulator or a slow receiver. After the signal no new request starts, those in flight finish,
the ledger is committed; `run` exits 0, `run --once` and `catch-up` print their summary and exit 1;
all within 10 s. A second signal exits at once."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from harvester.demo import PIPELINE, Reply, SimBuild, SimStage, Simulator
from harvester.ledger import Ledger
from tests.helpers import loopback_config, now_ms, spawn, wait_for

GRACE = 10.0  # Docker's default grace before SIGKILL


@pytest.fixture
def slow_sim() -> Simulator:
    """40 Pipeline builds on each of 4 jobs, 150 ms per request: a long collection."""
    with Simulator(latency_ms=150) as simulator:
        for j in range(4):
            simulator.add(f"team/p{j}", PIPELINE).builds = [
                SimBuild(n, now_ms() - (100 - n) * 1000, stages=[SimStage("Build")])
                for n in range(1, 41)
            ]
        yield simulator


def requests(sim: Simulator) -> int:
    with sim.lock:
        return sum(sim.counts.values())


def stop_and_measure(
    proc: subprocess.Popen[str], count, sig: signal.Signals
) -> tuple[int, int, float]:
    """Send ``sig``; returns (exit code, requests started after it, seconds to exit)."""
    proc.send_signal(sig)
    at_signal, sent = count(), time.monotonic()
    code = proc.wait(timeout=GRACE + 5)
    return code, count() - at_signal, time.monotonic() - sent


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_run_once_stops_collecting_at_once_and_prints_its_summary(
    slow_sim, receiver, tmp_path, sig
) -> None:
    config = loopback_config(slow_sim, receiver, tmp_path, jenkins={"max_concurrency": 4})
    proc = spawn(config, "run", "--once")
    assert wait_for(lambda: slow_sim.counts["wfapi"] >= 10)
    code, after, took = stop_and_measure(proc, lambda: requests(slow_sim), sig)
    _, err = proc.communicate()
    assert code == 1, err
    assert after <= 4  # at most the requests in flight (jenkins.max_concurrency)
    assert took < GRACE
    assert "interrupted; cycle:" in err  # the summary
    assert "Traceback" not in err
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.db'}")
    collected = len(ledger.entries())
    ledger.close()
    assert 0 < collected < 160  # committed what it had; the rest is for the next run


def test_catch_up_stops_on_sigint_and_a_rerun_sends_only_what_is_left(
    slow_sim, receiver, tmp_path
) -> None:
    config = loopback_config(slow_sim, receiver, tmp_path, jenkins={"max_concurrency": 4})
    proc = spawn(config, "catch-up", "--since", "1d")
    assert wait_for(lambda: slow_sim.counts["wfapi"] >= 10)
    code, after, took = stop_and_measure(proc, lambda: requests(slow_sim), signal.SIGINT)
    _, err = proc.communicate()
    assert code == 1, err
    assert after <= 4 and took < GRACE
    assert "catch-up: 4 job(s)" in err and "interrupted" in err
    slow_sim.latency_ms = 0
    rerun = spawn(config, "catch-up", "--since", "1d")
    assert rerun.wait(timeout=60) == 0, rerun.communicate()
    keys = receiver.accepted_keys()
    assert len(keys) == 160 and len(set(keys)) == 160  # everything, once


def test_catch_up_sigterm_is_the_same_as_sigint(slow_sim, receiver, tmp_path) -> None:
    config = loopback_config(slow_sim, receiver, tmp_path)
    proc = spawn(config, "catch-up", "--since", "1d")
    assert wait_for(lambda: slow_sim.counts["wfapi"] >= 5)
    code, _, took = stop_and_measure(proc, lambda: requests(slow_sim), signal.SIGTERM)
    _, err = proc.communicate()
    assert code == 1 and took < GRACE  # not killed outright (-15): it stopped and said so
    assert "catch-up:" in err


def test_the_daemon_stops_delivering_to_a_slow_receiver_within_the_grace(
    receiver, tmp_path
) -> None:
    with Simulator() as sim:
        sim.add("bulk").builds = [SimBuild(n, now_ms() - (200 - n) * 1000) for n in range(1, 101)]
        receiver.default = Reply(202, delay_seconds=0.5)
        config = loopback_config(
            sim, receiver, tmp_path, sei={"max_concurrency": 2, "timeout_seconds": 5}
        )
        proc = spawn(config, "run")
        assert wait_for(lambda: len(receiver.received) >= 4)
        code, after, took = stop_and_measure(proc, lambda: len(receiver.received), signal.SIGTERM)
        _, err = proc.communicate()
    assert code == 0, err
    assert after <= 2  # the POSTs in flight (sei.max_concurrency)
    assert took < GRACE
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.db'}")
    sent = ledger.stats().counts["sent"]
    ledger.close()
    assert sent >= len(receiver.accepted()) - 2  # what the receiver took is on record


def test_a_second_signal_exits_at_once(receiver, tmp_path) -> None:
    with Simulator() as sim:
        sim.add("app").builds = [SimBuild(n, now_ms() - (20 - n) * 1000) for n in range(1, 11)]
        receiver.default = Reply(202, delay_seconds=3)  # a POST in flight for 3 s
        config = loopback_config(sim, receiver, tmp_path)
        proc = spawn(config, "run", "--once")
        assert wait_for(lambda: len(receiver.received) >= 1 or proc.poll() is not None)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    assert proc.wait(timeout=5) == 130
    assert time.monotonic() - started < 2
    _, err = proc.communicate()
    assert "exiting at once" in err
