"""The benchmark. The Jenkins simulator (with a generated instance) and a local webhook receiver run in
a **separate process**, so the figures for the harvester (CPU, peak RSS) are its own.

    python bench/run.py catch-up   # issue 5: catch-up + idle cycle, then the naive baseline
    python bench/run.py deliver    # issue 4: deliveries/s of pending rows, nothing else running
    python bench/run.py daemon     # issue 4: latency of builds finishing while `harvester run` runs
    python bench/run.py throttled  # issue 10: catch-up against a receiver limited to 100 POSTs / 3 s
    python bench/run.py held       # issue 11: requests per cycle with a build running on every job
    python bench/run.py discovery  # issue 20: idle cycles against a controller of 20,000 jobs

``catch-up`` defaults to the issue's instance: 500 jobs in folders and multibranch projects x 20
builds, 5 stages x 4 steps, 20 ms per Jenkins request, jenkins.max_concurrency 8.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from naive import run_naive

from harvester.demo import (
    MULTIBRANCH,
    PIPELINE,
    SimBuild,
    SimJob,
    SimStage,
    Simulator,
    branch_job_name,
)
from harvester.util.names import decoded
from harvester.util.timeparse import to_epoch_ms

# -- the instance, served from a child process -------------------------------------------------


@dataclass(frozen=True)
class Shape:
    jobs: int
    builds: int
    stages: int
    steps: int
    latency_ms: float
    capacity: int | None = None  # requests served at once before Jenkins slows (governor mode)
    failed_every: int = 0  # every Nth build failed, its last step FAILED with a 2 KB log (0: none)
    tests: int = 0  # every build has a test report of this many cases (0: none)


def sim_build(number: int, start: int, shape: Shape, *, in_progress: bool = False) -> SimBuild:
    build = _sim_build(number, start, shape, in_progress=in_progress)
    if shape.failed_every and number % shape.failed_every == 0 and build.stages:
        build.result = None if in_progress else "FAILURE"
        last = build.stages[-1]
        last.status = "FAILED"
        name, _, step_start, duration = last.steps[-1]
        last.steps[-1] = (name, "FAILED", step_start, duration)
        # wfapi's node ids: stage i is 5 + i * (steps + 1), its steps follow it.
        node = 5 + (shape.stages - 1) * (shape.steps + 1) + shape.steps
        build.logs = {str(node): "".join(f"[{n:04d}] compiling module {n}\n" for n in range(80))}
    if shape.tests:
        build.tests = {
            "suites": [
                {
                    "name": f"suite{s}",
                    "duration": 1.0,
                    "cases": [
                        {
                            "className": f"com.example.Suite{s}",
                            "name": f"test{c}",
                            "duration": 0.005,
                            "status": "PASSED",
                        }
                        for c in range(shape.tests // 4)
                    ],
                }
                for s in range(4)
            ]
        }
    return build


def _sim_build(number: int, start: int, shape: Shape, *, in_progress: bool = False) -> SimBuild:
    return SimBuild(
        number,
        start,
        in_progress=in_progress,
        result=None if in_progress else "SUCCESS",
        causes=[{"_class": "hudson.model.Cause$UserIdCause", "userId": "u"}],
        commits=["ab" * 20],
        repo_url="https://git/x.git",
        stages=[
            SimStage(
                f"S{s}",
                "SUCCESS",
                start + s * 1000,
                900,
                [(f"step{k}", "SUCCESS", start + s * 1000 + k, 10) for k in range(shape.steps)],
            )
            for s in range(shape.stages)
        ],
    )


def add_job(sim: Simulator, branch_of: str | None, path: str, number: int) -> tuple[SimJob, str]:
    """A Pipeline job at ``path``, or (``branch_of`` a multibranch project's path) a branch of
    that project, created on first use. Returns the job and its full name."""
    if branch_of is None:
        return sim.add(path, PIPELINE), path
    try:
        project = sim.job(branch_of)
    except KeyError:
        project = sim.add(branch_of, MULTIBRANCH)
    job = SimJob(branch_job_name(f"feature/b{number}"), PIPELINE)
    project.children.append(job)
    return job, f"{branch_of}/{job.name}"


def build_instance(sim: Simulator, shape: Shape) -> list[str]:
    """Jobs in nested folders, every fifth one a branch of a multibranch project. Returns the jobs'
    full names."""
    now = to_epoch_ms(datetime.now(tz=UTC))
    names = []
    for j in range(shape.jobs):
        branch_of = f"org{j % 7}/mbp{j % 11}" if j % 5 == 4 else None
        job, name = add_job(sim, branch_of, f"org{j % 7}/team{j % 13}/sub{j % 3}/job{j}", j)
        names.append(name)
        for n in range(1, shape.builds + 1):
            job.builds.append(sim_build(n, now - (shape.builds - n + 1) * 3_600_000, shape))
    return names


def build_large_controller(sim: Simulator, shape: Shape) -> list[str]:
    """``shape.jobs`` jobs in 200 top-level folders; in each folder a fifth of its jobs are the
    branches of one multibranch project. One finished build each, a month old."""
    started = to_epoch_ms(datetime.now(tz=UTC)) - 30 * 86_400_000
    names = []
    per_folder = max(shape.jobs // 200, 1)
    for j in range(shape.jobs):
        folder = f"folder{j // per_folder}"
        job, name = add_job(sim, f"{folder}/mbp" if j % 5 == 4 else None, f"{folder}/job{j}", j)
        names.append(name)
        job.builds.append(sim_build(1, started, shape))
    return names


def serve(
    conn: Connection, shape: Shape, limit: tuple[int, float] | None, large: bool = False
) -> None:
    """The child process: serve the instance and answer the parent's commands until "stop"."""
    from harvester.demo import Receiver  # noqa: PLC0415

    with (
        Simulator(latency_ms=shape.latency_ms, capacity=shape.capacity) as sim,
        Receiver(limit=limit) as receiver,
    ):
        sim.record_paths = False
        names = build_large_controller(sim, shape) if large else build_instance(sim, shape)
        conn.send(
            {
                "jenkins": sim.url,
                "username": sim.username,
                "token": sim.api_token,
                "webhook": receiver.url,
                "jobs": names,
            }
        )
        while True:
            command, *args = conn.recv()
            if command == "stop":
                conn.send(None)
                return
            if command == "counts":
                with sim.lock:
                    conn.send(dict(sim.counts))
            elif command == "reset":
                sim.reset_counts()
                conn.send(None)
            elif command == "served":  # the latency (ms) each request was served with
                with sim.lock:
                    conn.send(list(sim.served_ms))
            elif command == "throttled":  # 429s answered so far
                conn.send(receiver.throttled())
            elif command == "bytes":  # request bodies received, in bytes
                with receiver.lock:
                    conn.send(
                        sum(int(r.headers.get("content-length", 0)) for r in receiver.received)
                    )
            elif command == "accepted":  # [(job, number, wall-clock time received)]
                with receiver.lock:
                    conn.send(
                        [
                            (r.body["job_full_name"], r.body["build_number"], r.at)
                            for r in receiver.received
                            if r.answered.startswith("2")
                        ]
                    )
            elif command == "start":  # a new build, running
                with sim.lock:
                    job = sim.job(args[0])
                    number = job.builds[-1].number + 1 if job.builds else 1
                    started = to_epoch_ms(datetime.now(tz=UTC))
                    job.builds.append(sim_build(number, started, shape, in_progress=True))
                conn.send(number)
            elif command == "finish":
                with sim.lock:
                    next(b for b in sim.job(args[0]).builds if b.number == args[1]).finish()
                conn.send(time.time())


class Instance:
    """The parent's handle on the serving child."""

    def __init__(self, conn: Connection, info: dict[str, Any]) -> None:
        self.conn = conn
        self.jenkins_url: str = info["jenkins"]
        self.username: str = info["username"]
        self.token: str = info["token"]
        self.webhook_url: str = info["webhook"]
        self.jobs: list[str] = info["jobs"]

    def ask(self, *command: Any) -> Any:
        self.conn.send(command)
        return self.conn.recv()

    def counts(self) -> dict[str, int]:
        return dict(self.ask("counts"))

    def config(self, tmp: str, **sections: dict[str, Any]) -> dict[str, Any]:
        config: dict[str, Any] = {
            "jenkins": {
                "url": self.jenkins_url,
                "username": self.username,
                "api_token": self.token,
            },
            "sei": {
                "url": self.webhook_url,
                "token": "demo-token",
                "instance_name": "bench",
                "instance_guid": "3f2b8c1e-0d4a-4c55-9e1b-7a6f5d4c3b2a",
                "max_concurrency": 4,
            },
            "ledger": {"url": f"sqlite:///{tmp}/bench.db"},
            "logging": {"level": "WARNING"},
        }
        for name, values in sections.items():
            config.setdefault(name, {}).update(values)
        return config


@contextmanager
def instance(
    shape: Shape, limit: tuple[int, float] | None = None, *, large: bool = False
) -> Iterator[Instance]:
    """The instance in a child process; ``limit``: the receiver's (POSTs, seconds) window;
    ``large``: a controller of 200 folders (build_large_controller)."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=serve, args=(child, shape, limit, large), daemon=True)
    process.start()
    try:
        yield Instance(parent, parent.recv())
        parent.send(("stop",))
        parent.recv()
    finally:
        process.join(5)
        if process.is_alive():
            process.kill()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def machine() -> str:
    return (
        f"{os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}, "
        f"{datetime.now(tz=UTC):%Y-%m-%d}"
    )


def timed_catch_up(
    harvester: Any,
    args: argparse.Namespace,
    now: datetime,
    *,
    deliverer: Any = None,
    leave_cursors: bool = False,
) -> tuple[Any, float, float]:
    """A catch-up of the generated history (the last 365 days): its result, wall seconds and CPU
    seconds."""
    from harvester.catchup import LogProgress, catch_up  # noqa: PLC0415

    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = catch_up(
        harvester.collector(),
        deliverer or harvester.deliverer(),
        since=now - timedelta(days=365),
        until=now,
        job_globs=[],
        progress=LogProgress(3600),
        leave_cursors=leave_cursors,
    )
    return result, time.perf_counter() - wall0, time.process_time() - cpu0


# -- catch-up (issue 5) ------------------------------------------------------------------------


def bench_catch_up(args: argparse.Namespace) -> None:
    from harvester.app import build_harvester, close_harvester  # noqa: PLC0415
    from harvester.config import settings_from_mapping  # noqa: PLC0415
    from harvester.util.timeparse import resolve_when  # noqa: PLC0415

    shape = Shape(
        args.jobs,
        args.builds,
        args.stages,
        args.steps,
        args.latency_ms,
        failed_every=args.failed_every,
        tests=args.tests,
    )
    limit = (args.limit, args.window) if args.limit else None
    with instance(shape, limit) as inst, tempfile.TemporaryDirectory() as tmp:
        settings = settings_from_mapping(
            inst.config(
                tmp,
                jenkins={"max_concurrency": args.concurrency},
                sei={
                    "max_concurrency": args.sei_concurrency,
                    "max_requests_per_minute": args.rpm,
                    "channel": args.channel,
                },
            )
        )
        harvester = build_harvester(settings, threading.Event())
        now = datetime.now(tz=UTC)
        rss_before = peak_rss_mb()
        deliverer = harvester.deliverer()
        # leave_cursors: as `harvester catch-up` without --until
        result, wall, cpu = timed_catch_up(
            harvester, args, now, deliverer=deliverer, leave_cursors=True
        )
        rss = peak_rss_mb()
        counts = inst.counts()
        requests = sum(counts.values())
        pipeline_builds = args.jobs * args.builds  # every generated job is a Pipeline
        r_min = 1 + args.jobs + pipeline_builds
        collected = result.collect.builds_collected
        bound = requests * args.latency_ms / 1000 / args.concurrency
        print(f"machine: {machine()}")
        print(
            f"catch-up: {args.jobs} jobs x {args.builds} builds, {args.stages} stages x "
            f"{args.steps} steps, {args.latency_ms:g} ms per Jenkins request, "
            f"jenkins.max_concurrency {args.concurrency}, sei.max_concurrency {args.sei_concurrency}"
        )
        print(f"  builds collected {collected}, delivered {result.delivery.delivered}")
        print(
            f"  Jenkins requests {requests} {counts}; R_min {r_min}; ratio {requests / r_min:.3f}"
        )
        print(
            f"  wall {wall:.1f} s; latency bound {bound:.1f} s; "
            + (f"ratio {wall / bound:.2f}" if bound > 0 else "no ratio (0 ms latency)")
        )
        print(f"  deliveries/s over the run {result.delivery.delivered / wall:.0f}")
        if args.rpm:
            paced = result.delivery.delivered / args.rpm * 60
            print(
                f"  pacing bound ({args.rpm:g} POSTs/min) {paced:.1f} s; wall {wall / paced:.3f} x it"
            )
        if limit is not None:
            print(
                f"  receiver allows {args.limit} POSTs per {args.window:g} s: "
                f"{inst.ask('throttled')} answered 429"
            )
        print(
            f"  CPU {cpu:.1f} s = {cpu * 1000 / max(collected, 1):.2f} ms/build "
            f"= {100 * cpu / wall:.1f} % of one core over the run"
        )
        print(f"  peak RSS {rss:.0f} MB (before the catch-up {rss_before:.0f} MB)")
        print(
            f"  channel {args.channel}: per build, {counts.get('log', 0) / max(collected, 1):.3f} "
            f"log and {counts.get('tests', 0) / max(collected, 1):.3f} test requests; "
            f"{inst.ask('bytes') / max(result.delivery.delivered, 1) / 1024:.1f} KiB on the wire"
        )

        # right after the catch-up: it left each job a cursor, so nothing is listed again
        inst.ask("reset")
        cpu0 = time.process_time()
        idle = harvester.collector().collect(resolve_when("7d", now))
        print(
            f"idle cycle right after the catch-up: {sum(inst.counts().values())} Jenkins request(s), "
            f"{idle.builds_collected} collected, CPU {time.process_time() - cpu0:.2f} s"
        )
        close_harvester(harvester)

        if args.no_baseline:
            return
        inst.ask("reset")
        naive = run_naive(
            inst.jenkins_url,
            inst.username,
            inst.token,
            since_ms=to_epoch_ms(now - timedelta(days=365)),
            until_ms=to_epoch_ms(now),
            concurrency=args.concurrency,
        )
        naive_counts = inst.counts()
        naive_requests = sum(naive_counts.values())
        print(f"naive python-jenkins baseline at concurrency {args.concurrency} (reads only):")
        print(f"  builds read {naive.builds}; Jenkins requests {naive_requests} {naive_counts}")
        print(f"  wall {naive.wall_seconds:.1f} s; CPU {naive.cpu_seconds:.1f} s")
        print("side by side:          harvester     naive    naive/harvester")
        print(
            f"  Jenkins requests  {requests:>10} {naive_requests:>9} "
            f"{naive_requests / requests:>10.1f}x"
        )
        print(
            f"  wall time (s)     {wall:>10.1f} {naive.wall_seconds:>9.1f} "
            f"{naive.wall_seconds / wall:>10.1f}x"
        )


# -- a large controller's idle cycle (issue 20) ----------------------------------------------------


def bench_discovery(args: argparse.Namespace) -> None:
    """An idle cycle against a controller of ``--jobs`` jobs in 200 folders (multibranch projects
    among them): the discovery answer's size and time to serve, and the harvester's CPU and peak
    RSS for a cycle that finds nothing new (every job already has its cursor)."""
    import base64  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    from harvester.app import build_harvester, close_harvester  # noqa: PLC0415
    from harvester.config import settings_from_mapping  # noqa: PLC0415
    from harvester.jenkins.discovery import discovery_tree  # noqa: PLC0415

    shape = Shape(args.jobs, 1, 0, 0, 0)
    with instance(shape, large=True) as inst, tempfile.TemporaryDirectory() as tmp:
        request = urllib.request.Request(
            f"{inst.jenkins_url}api/json?tree={discovery_tree()}",
            headers={
                "Authorization": "Basic "
                + base64.b64encode(f"{inst.username}:{inst.token}".encode()).decode()
            },
        )
        served = []
        for _ in range(3):
            wall0 = time.perf_counter()
            with urllib.request.urlopen(request, timeout=300) as answer:
                size = len(answer.read())
            served.append(time.perf_counter() - wall0)
        settings = settings_from_mapping(inst.config(tmp))
        harvester = build_harvester(settings, threading.Event())
        since = datetime.now(tz=UTC) - timedelta(days=7)  # the builds are a month old
        inst.ask("reset")
        cpu0, wall0 = time.process_time(), time.perf_counter()
        first = harvester.collector().collect(since)
        first_cpu, first_wall = time.process_time() - cpu0, time.perf_counter() - wall0
        first_requests = sum(inst.counts().values())
        idle = []
        for _ in range(3):
            inst.ask("reset")
            cpu0, wall0 = time.process_time(), time.perf_counter()
            report = harvester.collector().collect(since)
            idle.append(
                (
                    time.process_time() - cpu0,
                    time.perf_counter() - wall0,
                    sum(inst.counts().values()),
                    report.builds_collected,
                )
            )
        rss = peak_rss_mb()
        close_harvester(harvester)
    print(f"machine: {machine()}")
    print(f"discovery: {len(inst.jobs)} jobs in 200 folders, a fifth of them multibranch branches")
    print(
        f"  the discovery answer: {size / 1e6:.1f} MB, served in "
        f"{min(served):.2f}-{max(served):.2f} s (simulator on loopback, 3 reads)"
    )
    print(
        f"  first cycle (every job new): {first.builds_collected} collected, {first_requests} "
        f"requests, CPU {first_cpu:.1f} s, wall {first_wall:.1f} s"
    )
    for cpu, wall, requests, collected in idle:
        print(
            f"  idle cycle: {requests} request(s), {collected} collected, CPU {cpu:.2f} s, "
            f"wall {wall:.2f} s"
        )
    print(f"  peak RSS of the harvester {rss:.0f} MB")


# -- deliveries/s (issue 4) --------------------------------------------------------------------


def bench_deliver(args: argparse.Namespace) -> None:
    """Collect first (not timed), then time sending every pending row, nothing else running."""
    from harvester.app import build_harvester, close_harvester  # noqa: PLC0415
    from harvester.config import settings_from_mapping  # noqa: PLC0415

    shape = Shape(args.jobs, args.builds, args.stages, args.steps, 0)
    with instance(shape) as inst, tempfile.TemporaryDirectory() as tmp:
        settings = settings_from_mapping(
            inst.config(
                tmp,
                sei={"max_concurrency": args.sei_concurrency, "max_requests_per_minute": args.rpm},
            )
        )
        harvester = build_harvester(settings, threading.Event())
        collected = harvester.collector().collect(datetime.now(tz=UTC) - timedelta(days=365))
        cpu0, wall0 = time.process_time(), time.perf_counter()
        report = harvester.deliverer().deliver_due()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        close_harvester(harvester)
        received = len(inst.ask("accepted"))
    print(f"machine: {machine()}")
    print(
        f"deliver: {collected.builds_collected} pending rows, sei.max_concurrency "
        f"{args.sei_concurrency}, SQLite ledger, receiver on loopback in another process"
    )
    print(
        f"  sei.max_requests_per_minute {args.rpm:g} (0: pacing off); delivered "
        f"{report.delivered} (receiver accepted {received}) in {wall:.2f} s"
    )
    print(
        f"  {report.delivered / wall:.0f} deliveries/s; CPU {cpu * 1000 / report.delivered:.2f} ms each"
    )


# -- against a rate-limited receiver (issue 10) ---------------------------------------------------


def bench_throttled(args: argparse.Namespace) -> None:
    """Catch-up against a receiver that allows ``--limit`` POSTs per ``--window`` seconds and
    answers 429 without Retry-After beyond (as Harness SEI does), paced and unpaced."""
    from harvester.app import build_harvester, close_harvester  # noqa: PLC0415
    from harvester.config import settings_from_mapping  # noqa: PLC0415

    shape = Shape(args.jobs, args.builds, args.stages, args.steps, 0)
    builds = args.jobs * args.builds
    bound = builds / (args.limit / args.window)
    print(f"machine: {machine()}")
    print(
        f"throttled: catch-up of {builds} builds; the receiver allows {args.limit} POSTs per "
        f"{args.window:g} s, then 429 without Retry-After; bound {bound:.1f} s"
    )
    for rpm in (args.rpm, 0):
        with (
            instance(shape, (args.limit, args.window)) as inst,
            tempfile.TemporaryDirectory() as tmp,
        ):
            settings = settings_from_mapping(
                inst.config(
                    tmp,
                    sei={"max_concurrency": args.sei_concurrency, "max_requests_per_minute": rpm},
                )
            )
            harvester = build_harvester(settings, threading.Event())
            result, wall, _ = timed_catch_up(harvester, args, datetime.now(tz=UTC))
            throttled = inst.ask("throttled")
            dead = harvester.ledger.stats().counts["dead"]
            close_harvester(harvester)
        delivered = result.delivery.delivered
        print(
            f"  sei.max_requests_per_minute {rpm:>5g}: delivered {delivered}/{builds}, dead {dead}, "
            f"exit {result.exit_code}; wall {wall:.1f} s = {wall / bound:.2f} x the bound; "
            f"429 answers {throttled} = {100 * throttled / max(delivered, 1):.1f} per 100 deliveries"
        )


# -- held builds (issue 11) ------------------------------------------------------------------------


def bench_held(args: argparse.Namespace) -> None:
    """On each of --jobs jobs one build keeps running while a later one finishes: the cycle that
    meets them collects the finished one and holds the running one; the cycles after re-check each
    held build on its own (1 request) and list no job again."""
    from harvester.app import build_harvester, close_harvester  # noqa: PLC0415
    from harvester.config import settings_from_mapping  # noqa: PLC0415

    shape = Shape(args.jobs, args.builds, args.stages, args.steps, 0)
    with instance(shape) as inst, tempfile.TemporaryDirectory() as tmp:
        settings = settings_from_mapping(inst.config(tmp))
        harvester = build_harvester(settings, threading.Event())
        since = datetime.now(tz=UTC) - timedelta(days=365)
        harvester.collector().collect(since)  # the history, and a cursor per job
        for job in inst.jobs:
            inst.ask("start", job)  # one build running on every job (a Pipeline on `input`)...
            inst.ask("finish", job, inst.ask("start", job))  # ...and a later one finished
        inst.ask("reset")
        first = harvester.collector().collect(since)
        first_requests = dict(inst.counts())
        per_cycle = []
        for _ in range(args.cycles):
            inst.ask("reset")
            report = harvester.collector().collect(since)
            per_cycle.append((sum(inst.counts().values()), report.builds_held, dict(inst.counts())))
        close_harvester(harvester)
    print(f"machine: {machine()}")
    print(
        f"held: {args.jobs} jobs, on each one build running and a later one finished; "
        f"{args.cycles} cycles after"
    )
    print(
        f"  the cycle that meets them: {sum(first_requests.values())} requests {first_requests}, "
        f"{first.builds_held} held"
    )
    for requests, held, counts in per_cycle:
        print(
            f"  a later cycle: {requests} requests {counts} for {held} held builds = "
            f"{(requests - 1) / max(held, 1):.2f} per held build (plus 1 discovery)"
        )


# -- latency under the daemon (issue 4) --------------------------------------------------------


def bench_daemon(args: argparse.Namespace) -> None:
    """Start `harvester run`, then finish builds at random moments and time how long each takes to
    reach the receiver. The bound is one interval + 2 s."""
    shape = Shape(args.jobs, 2, args.stages, args.steps, args.latency_ms)
    with instance(shape) as inst, tempfile.TemporaryDirectory() as tmp:
        config = inst.config(
            tmp,
            harvest={"interval_seconds": args.interval},
            logging={"level": "INFO"},
        )
        config_path = Path(tmp, "config.json")
        config_path.write_text(json.dumps(config))
        log_path = Path(tmp, "daemon.log")
        with log_path.open("w") as log_file:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "harvester", "--config", str(config_path), "run"],
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        try:
            history = len(inst.jobs) * 2
            deadline = time.time() + 300
            while len(inst.ask("accepted")) < history:  # the first cycles send the history
                if time.time() > deadline or daemon.poll() is not None:
                    raise SystemExit(f"the daemon did not deliver the history; see {log_path}")
                time.sleep(0.5)
            rng = random.Random(7)
            finished: dict[tuple[str, int], float] = {}
            for _ in range(args.samples):
                job = rng.choice(inst.jobs)
                number = inst.ask("start", job)
                time.sleep(rng.uniform(0, args.interval))
                # the payload names a branch job decoded (feature%2Fx -> feature/x)
                finished[(decoded(job), number)] = inst.ask("finish", job, number)
            deadline = time.time() + args.interval + 10
            latencies: dict[tuple[str, int], float] = {}
            while time.time() < deadline and len(latencies) < len(finished):
                for job, number, at in inst.ask("accepted"):
                    if (job, number) in finished:
                        latencies[(job, number)] = at - finished[(job, number)]
                time.sleep(0.2)
        finally:
            daemon.send_signal(signal.SIGTERM)
            code = daemon.wait(30)
            if code != 0:
                print(log_path.read_text(), file=sys.stderr)
    bound = args.interval + 2
    values = sorted(latencies.values())
    print(f"machine: {machine()}")
    print(
        f"daemon: `harvester run`, harvest.interval_seconds {args.interval:g}, {args.jobs} jobs, "
        f"{args.latency_ms:g} ms per Jenkins request; {args.samples} builds finished at random moments"
    )
    print(f"  delivered {len(values)}/{len(finished)}; daemon exit on SIGTERM {code}")
    if values:
        print(
            f"  finish -> received: median {statistics.median(values):.2f} s, "
            f"max {values[-1]:.2f} s; bound (interval + 2 s) {bound:g} s: "
            f"{'met' if values[-1] <= bound and len(values) == len(finished) else 'NOT met'}"
        )


def _watch(governor: Any, limits: list[int], done: threading.Event) -> None:
    while not done.wait(0.05):
        limits.append(governor.limit)


def bench_governor(args: argparse.Namespace) -> None:
    """A catch-up against a simulator that serves --capacity requests at once at its latency and
    slows down in proportion beyond (latency doubles at twice the capacity), with
    jenkins.max_concurrency well above it; then the same against one that never slows."""
    from harvester.app import build_harvester, close_harvester  # noqa: PLC0415
    from harvester.config import settings_from_mapping  # noqa: PLC0415

    print(f"machine: {machine()}")
    print(
        f"governor: catch-up of {args.jobs} jobs x {args.builds} builds, {args.latency_ms:g} ms per "
        f"request while at most {args.capacity} are served at once, jenkins.max_concurrency "
        f"{args.concurrency}"
    )
    for capacity in (args.capacity, None):
        shape = Shape(args.jobs, args.builds, args.stages, args.steps, args.latency_ms, capacity)
        with instance(shape) as inst, tempfile.TemporaryDirectory() as tmp:
            settings = settings_from_mapping(
                inst.config(
                    tmp,
                    jenkins={"max_concurrency": args.concurrency},
                    sei={"max_requests_per_minute": 0},
                )
            )
            harvester = build_harvester(settings, threading.Event(), "catch-up")
            limits: list[int] = []
            done = threading.Event()

            threading.Thread(
                target=_watch, args=(harvester.jenkins.governor, limits, done), daemon=True
            ).start()
            result, wall, _ = timed_catch_up(harvester, args, datetime.now(tz=UTC))
            done.set()
            close_harvester(harvester)
            served = inst.ask("served")
        failed = len(result.collect.job_errors)
        settled = limits[len(limits) // 2 :] or [0]
        what = f"slows beyond {capacity} at once" if capacity else "never slows"
        print(
            f"  Jenkins {what}: {len(served)} requests, mean latency "
            f"{statistics.mean(served):.1f} ms = {statistics.mean(served) / args.latency_ms:.2f} x "
            f"idle (max {max(served):.0f} ms), {failed} job(s) failed, exit {result.exit_code}; "
            f"concurrency limit in the second half: mean {statistics.mean(settled):.1f}, "
            f"max {max(limits or [0])}; wall {wall:.1f} s"
        )


def _bench_breakdown(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: bench.breakdown
    from bench.breakdown import bench_breakdown  # noqa: PLC0415

    bench_breakdown(args)


def _bench_replicas(args: argparse.Namespace) -> None:
    # The repo root, for bench.replicas and the tests' PostgreSQL server (tests/pgserver.py).
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.replicas import bench_replicas  # noqa: PLC0415 - starts PostgreSQL: only when asked

    bench_replicas(args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)

    def mode(
        name: str, help_text: str, *, jobs: int, builds: int | None
    ) -> argparse.ArgumentParser:
        """A mode with the instance's shape as options."""
        command = sub.add_parser(name, help=help_text)
        command.add_argument("--jobs", type=int, default=jobs)
        if builds is not None:
            command.add_argument("--builds", type=int, default=builds)
        command.add_argument("--stages", type=int, default=5)
        command.add_argument("--steps", type=int, default=4)
        return command

    catch = mode("catch-up", "catch-up + idle cycle, then the naive baseline", jobs=500, builds=20)
    catch.add_argument("--latency-ms", type=float, default=20)
    catch.add_argument("--concurrency", type=int, default=8, help="jenkins.max_concurrency")
    catch.add_argument("--sei-concurrency", type=int, default=4, help="sei.max_concurrency")
    catch.add_argument("--no-baseline", action="store_true")
    catch.add_argument("--rpm", type=float, default=0, help="sei.max_requests_per_minute (0: off)")
    catch.add_argument(
        "--limit", type=int, default=0, help="the receiver's POSTs per window (0: none)"
    )
    catch.add_argument("--window", type=float, default=60.0, help="the receiver's window (s)")
    catch.add_argument("--channel", choices=("webhook", "plugin"), default="webhook")
    catch.add_argument("--failed-every", type=int, default=0, help="1 build in N failed (0: none)")
    catch.add_argument("--tests", type=int, default=0, help="test cases per build (0: no report)")
    deliver = mode("deliver", "deliveries/s of pending rows", jobs=100, builds=20)
    deliver.add_argument("--sei-concurrency", type=int, default=4)
    deliver.add_argument("--rpm", type=float, default=0, help="sei.max_requests_per_minute")
    held = mode("held", "requests per cycle with a build running on every job", jobs=100, builds=3)
    held.add_argument("--cycles", type=int, default=3)
    throttled = mode("throttled", "catch-up against a rate-limited receiver", jobs=30, builds=20)
    throttled.add_argument("--limit", type=int, default=100, help="POSTs per window")
    throttled.add_argument("--window", type=float, default=3.0, help="seconds")
    throttled.add_argument("--rpm", type=float, default=1900, help="sei.max_requests_per_minute")
    throttled.add_argument("--sei-concurrency", type=int, default=4)
    # daemon: two builds of history per job, then the builds it finishes itself
    daemon = mode(
        "daemon", "finish -> delivered latency under `harvester run`", jobs=200, builds=None
    )
    daemon.add_argument("--latency-ms", type=float, default=20)
    daemon.add_argument("--interval", type=float, default=10)
    daemon.add_argument("--samples", type=int, default=10)
    replicas = mode(
        "replicas", "one daemon, then two, on one PostgreSQL ledger", jobs=500, builds=20
    )
    replicas.add_argument("--latency-ms", type=float, default=20)
    replicas.add_argument("--concurrency", type=int, default=8, help="jenkins.max_concurrency")
    replicas.add_argument("--interval", type=float, default=5, help="harvest.interval_seconds")
    replicas.add_argument("--idle-cycles", type=int, default=3)
    governor = mode(
        "governor", "catch-up against a Jenkins that slows under load", jobs=100, builds=20
    )
    governor.add_argument("--latency-ms", type=float, default=20)
    governor.add_argument("--capacity", type=int, default=4, help="requests served at full speed")
    governor.add_argument("--concurrency", type=int, default=16, help="jenkins.max_concurrency")
    mode("discovery", "idle cycles against a controller of 20,000 jobs", jobs=20_000, builds=None)
    breakdown = mode(
        "breakdown", "CPU per build by part, in the real catch-up", jobs=500, builds=20
    )
    breakdown.add_argument("--latency-ms", type=float, default=20)
    breakdown.add_argument("--concurrency", type=int, default=8, help="jenkins.max_concurrency")
    breakdown.add_argument("--sei-concurrency", type=int, default=4, help="sei.max_concurrency")
    args = parser.parse_args()
    modes = {
        "catch-up": bench_catch_up,
        "deliver": bench_deliver,
        "daemon": bench_daemon,
        "throttled": bench_throttled,
        "held": bench_held,
        "replicas": _bench_replicas,
        "governor": bench_governor,
        "breakdown": _bench_breakdown,
        "discovery": bench_discovery,
    }
    modes[args.mode](args)


if __name__ == "__main__":
    main()
