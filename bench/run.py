"""Benchmark: a generated instance in the Jenkins simulator, a local receiver, a catch-up, then an
idle cycle. Prints requests by kind against R_min, wall time, deliveries/s, peak RSS, CPU per build.

    python bench/run.py --jobs 500 --builds 20 --stages 5 --steps 4 --latency-ms 20 --concurrency 8
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta

from harvester.catchup import LogProgress, catch_up
from harvester.cli import build_harvester, close_harvester
from harvester.config import settings_from_mapping
from harvester.receiver import Receiver
from harvester.simulator import (
    MULTIBRANCH,
    PIPELINE,
    SimBuild,
    SimJob,
    SimStage,
    Simulator,
    branch_job_name,
)
from harvester.timeparse import resolve_when, to_epoch_ms


def build_instance(sim: Simulator, jobs: int, builds: int, stages: int, steps: int) -> int:
    now = to_epoch_ms(datetime.now(tz=UTC))
    pipelines = 0
    for j in range(jobs):
        if j % 5 == 4:  # every fifth job is a branch of a multibranch project
            try:
                project = sim.job(f"org{j % 7}/mbp{j % 11}")
            except KeyError:
                project = sim.add(f"org{j % 7}/mbp{j % 11}", MULTIBRANCH)
            job = SimJob(branch_job_name(f"feature/b{j}"), PIPELINE)
            project.children.append(job)
        else:
            job = sim.add(f"org{j % 7}/team{j % 13}/sub{j % 3}/job{j}", PIPELINE)
        for n in range(1, builds + 1):
            start = now - (builds - n + 1) * 3_600_000
            job.builds.append(
                SimBuild(
                    n,
                    start,
                    causes=[{"_class": "hudson.model.Cause$UserIdCause", "userId": "u"}],
                    commits=["ab" * 20],
                    repo_url="https://git/x.git",
                    stages=[
                        SimStage(
                            f"S{s}",
                            "SUCCESS",
                            start + s * 1000,
                            900,
                            [
                                (f"step{k}", "SUCCESS", start + s * 1000 + k, 10)
                                for k in range(steps)
                            ],
                        )
                        for s in range(stages)
                    ],
                )
            )
            pipelines += 1
    return pipelines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--builds", type=int, default=20)
    parser.add_argument("--stages", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with (
        Simulator(latency_ms=args.latency_ms) as sim,
        Receiver() as receiver,
        tempfile.TemporaryDirectory() as tmp,
    ):
        sim.record_paths = False
        pipelines = build_instance(sim, args.jobs, args.builds, args.stages, args.steps)
        settings = settings_from_mapping(
            {
                "jenkins": {
                    "url": sim.url,
                    "username": sim.username,
                    "api_token": sim.api_token,
                    "max_concurrency": args.concurrency,
                },
                "sei": {
                    "url": receiver.url,
                    "token": "demo-token",
                    "instance_name": "bench",
                    "instance_guid": "3f2b8c1e-0d4a-4c55-9e1b-7a6f5d4c3b2a",
                    "max_concurrency": 4,
                },
                "ledger": {"url": f"sqlite:///{tmp}/bench.db"},
                "logging": {"level": "WARNING"},
            }
        )
        harvester = build_harvester(settings, threading.Event())
        now = datetime.now(tz=UTC)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        result = catch_up(
            harvester.collector(),
            harvester.deliverer(),
            since=now - timedelta(days=365),
            until=now,
            job_globs=[],
            progress=LogProgress(3600),
        )
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        requests = sum(sim.counts.values())
        r_min = 1 + args.jobs + pipelines
        collected = result.collect.builds_collected
        print(
            f"catch-up: {args.jobs} jobs x {args.builds} builds, {args.stages}x{args.steps} "
            f"stages x steps, {args.latency_ms} ms/request, jenkins.max_concurrency {args.concurrency}"
        )
        print(f"  builds collected {collected}, delivered {result.delivery.delivered}")
        print(
            f"  Jenkins requests {requests} by kind {dict(sim.counts)}; R_min {r_min}; "
            f"ratio {requests / r_min:.3f}"
        )
        bound = requests * args.latency_ms / 1000 / args.concurrency
        print(
            f"  wall {wall:.1f} s; latency bound {bound:.1f} s; ratio {wall / max(bound, 1e-9):.2f}"
        )
        print(f"  deliveries/s over the run {result.delivery.delivered / wall:.0f}")
        print(
            f"  CPU (harvester + in-process simulator and receiver) {cpu * 1000 / max(collected, 1):.2f} ms/build"
        )
        print(
            f"  peak RSS (process, incl. simulator) {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
        )
        # catch-up leaves cursors alone; the first regular cycle sets them (nothing to send)
        harvester.collector().collect(resolve_when("365d", now))
        sim.reset_counts()
        cpu0 = time.process_time()
        idle = harvester.collector().collect(resolve_when("7d", now))
        print(
            f"idle cycle: {sum(sim.counts.values())} Jenkins request(s), "
            f"{idle.builds_collected} collected, CPU {time.process_time() - cpu0:.2f} s "
            f"(incl. the simulator serving the discovery response)"
        )
        close_harvester(harvester)


if __name__ == "__main__":
    main()
