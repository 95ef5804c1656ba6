"""The Jenkins load governor against a controller that slows down under load (issue 14): the
simulator serves ``capacity`` requests at once at its latency, and each one beyond makes every
request slower in proportion, so latency doubles at twice the capacity."""

from __future__ import annotations

import statistics
from pathlib import Path

from harvester.cli.main import main
from harvester.demo import PIPELINE, Receiver, SimBuild, SimStage, Simulator
from tests.helpers import loopback_config, now_ms

LATENCY_MS = 20


def test_a_catch_up_settles_below_the_point_where_jenkins_latency_doubles(
    tmp_path: Path, receiver: Receiver
) -> None:
    with Simulator(latency_ms=LATENCY_MS, capacity=3) as sim:
        start = now_ms() - 86_400_000
        for j in range(20):
            sim.add(f"team/job-{j}", PIPELINE).builds = [
                SimBuild(n, start + n * 60_000, stages=[SimStage("Build"), SimStage("Test")])
                for n in range(1, 9)
            ]
        # A ceiling of 16 in flight would make Jenkins 16 / 3 = 5.3 x slower.
        config = loopback_config(
            sim,
            receiver,
            tmp_path,
            jenkins={"max_concurrency": 16},
            sei={"max_requests_per_minute": 60_000},
        )
        assert main(["--config", str(config), "catch-up", "--since", "30d"]) == 0
        served = list(sim.served_ms)
    assert len(set(receiver.accepted_keys())) == 160  # finished, every build, no failed request
    settled = served[len(served) // 3 :]  # after the ramp from 1
    assert statistics.mean(settled) <= 2 * LATENCY_MS, statistics.mean(settled)
    assert statistics.mean(served) <= 2 * LATENCY_MS
    # Not throttled to one at a time either: some requests did overlap.
    assert max(served) > LATENCY_MS
