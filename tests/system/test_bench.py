"""The benchmark still runs (on a tiny instance; no figure is asserted, only that it works and
that the harvester's request count is the minimum)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run_bench(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_catch_up_mode_with_the_naive_baseline() -> None:
    out = run_bench("catch-up", "--jobs", "6", "--builds", "3", "--latency-ms", "0")
    assert "builds collected 18, delivered 18" in out
    assert "R_min 25; ratio 1.000" in out  # 1 + 6 jobs + 18 Pipeline builds
    assert "idle cycle right after the catch-up: 1 Jenkins request(s), 0 collected" in out
    # naive: 1 listing + 6 jobs + 18 builds + 18 describes + 18 x 5 stage describes (+ crumbs)
    assert "builds read 18" in out
    assert "'wfapi-node': 90" in out
    assert "side by side" in out


def test_deliver_mode() -> None:
    out = run_bench("deliver", "--jobs", "4", "--builds", "5")
    assert "delivered 20 (receiver accepted 20)" in out


def test_throttled_mode() -> None:
    out = run_bench(
        "throttled",
        "--jobs",
        "3",
        "--builds",
        "5",
        "--limit",
        "10",
        "--window",
        "1",
        "--rpm",
        "480",
    )
    assert "delivered 15/15, dead 0, exit 0" in out


def test_held_mode() -> None:
    out = run_bench("held", "--jobs", "4", "--builds", "2", "--cycles", "1")
    assert "a later cycle: 5 requests" in out and "for 4 held builds = 1.00 per held build" in out
