"""The benchmark. The Jenkins simulator (with a generated instance) and a local webhook receiver run in
a **separate process**, so the figures for the harvester (CPU, peak RSS) are its own.

    python bench/run.py catch-up   # issue 5: catch-up + idle cycle, then the naive baseline
    python bench/run.py deliver    # issue 4: deliveries/s of pending rows, nothing else running
    python bench/run.py daemon     # issue 4: latency of builds finishing while `harvester run` runs
    python bench/run.py throttled  # issue 10: catch-up against a receiver limited to 100 POSTs / 3 s
    python bench/run.py held       # issue 11: requests per cycle with a build running on every job

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
from contextlib import AbstractContextManager, contextmanager
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


def sim_build(number: int, start: int, shape: Shape, *, in_progress: bool = False) -> SimBuild:
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


def build_instance(sim: Simulator, shape: Shape) -> list[str]:
    """Jobs in nested folders, every fifth one a branch of a multibranch project. Returns the jobs'
    full names."""
    now = to_epoch_ms(datetime.now(tz=UTC))
    names = []
    for j in range(shape.jobs):
        if j % 5 == 4:
            path = f"org{j % 7}/mbp{j % 11}"
            try:
                project = sim.job(path)
            except KeyError:
                project = sim.add(path, MULTIBRANCH)
            job = SimJob(branch_job_name(f"feature/b{j}"), PIPELINE)
            project.children.append(job)
            names.append(f"{path}/{job.name}")
        else:
            names.append(f"org{j % 7}/team{j % 13}/sub{j % 3}/job{j}")
            job = sim.add(names[-1], PIPELINE)
        for n in range(1, shape.builds + 1):
            job.builds.append(sim_build(n, now - (shape.builds - n + 1) * 3_600_000, shape))
    return names


def serve(conn: Connection, shape: Shape, limit: tuple[int, float] | None) -> None:
    """The child process: serve the instance and answer the parent's commands until "stop"."""
    from harvester.demo import Receiver  # noqa: PLC0415

    with (
        Simulator(latency_ms=shape.latency_ms, capacity=shape.capacity) as sim,
        Receiver(limit=limit) as receiver,
    ):
        sim.record_paths = False
        names = build_instance(sim, shape)
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
def instance(shape: Shape, limit: tuple[int, float] | None = None) -> Iterator[Instance]:
    """The instance in a child process; ``limit``: the receiver's (POSTs, seconds) window."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=serve, args=(child, shape, limit), daemon=True)
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


def one_cpu(args: argparse.Namespace) -> AbstractContextManager[Any]:
    """This process's threads on one CPU, as ``harvester run`` and ``catch-up`` keep theirs
    (harvest.single_cpu; ``--spread``: not). Only around the harvester working in this process:
    a child started meanwhile (the instance, a ``harvester run``) would inherit the one CPU."""
    from harvester.util.affinity import OneCpu  # noqa: PLC0415

    return OneCpu(not args.spread)


def timed_catch_up(
    harvester: Any,
    args: argparse.Namespace,
    now: datetime,
    *,
    deliverer: Any = None,
    leave_cursors: bool = False,
) -> tuple[Any, float, float]:
    """A catch-up of the generated history (the last 365 days) on one CPU unless ``--spread``:
    its result, wall seconds and CPU seconds."""
    from harvester.catchup import LogProgress, catch_up  # noqa: PLC0415

    with one_cpu(args):
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

    shape = Shape(args.jobs, args.builds, args.stages, args.steps, args.latency_ms)
    with instance(shape) as inst, tempfile.TemporaryDirectory() as tmp:
        settings = settings_from_mapping(
            inst.config(
                tmp,
                jenkins={"max_concurrency": args.concurrency},
                sei={
                    "max_concurrency": args.sei_concurrency,
                    "max_requests_per_minute": args.rpm,
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
        recorder = deliverer.recorder
        print(
            f"  outcomes recorded {recorder.records} in {recorder.transactions} transactions "
            f"({recorder.records / max(recorder.transactions, 1):.2f} per transaction)"
        )
        print(f"  CPU {cpu:.1f} s = {cpu * 1000 / max(collected, 1):.2f} ms/build")
        print(f"  peak RSS {rss:.0f} MB (before the catch-up {rss_before:.0f} MB)")

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
        with one_cpu(args):
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
    # As the `harvester` command does first (harvester.util.memory): fewer malloc arenas.
    from harvester.util.memory import limit_malloc_arenas  # noqa: PLC0415

    limit_malloc_arenas()
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
    breakdown = mode(
        "breakdown", "CPU per build by part, in the real catch-up", jobs=500, builds=20
    )
    breakdown.add_argument("--latency-ms", type=float, default=20)
    breakdown.add_argument("--concurrency", type=int, default=8, help="jenkins.max_concurrency")
    breakdown.add_argument("--sei-concurrency", type=int, default=4, help="sei.max_concurrency")
    parser.add_argument(
        "--spread",
        action="store_true",
        help="let the OS spread the harvester's threads over the CPUs (harvest.single_cpu false)",
    )
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
    }
    modes[args.mode](args)


if __name__ == "__main__":
    main()
