"""Replicas on one PostgreSQL ledger (issue 13): one daemon, then two, side by side on the same
instance shape, from first start (the history: a catch-up by the daemons' first cycles) through a
few idle cycles; then the failover of a replica killed with SIGKILL mid-way.

The PostgreSQL server is the tests' own throw-away one (tests/pgserver.py), started here."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.pgserver import create_database, postgres_server


@contextmanager
def daemons(
    config: dict[str, Any], count: int, tmp: str
) -> Iterator[list[subprocess.Popen[bytes]]]:
    path = Path(tmp, "config.json")
    path.write_text(json.dumps(config))
    procs = []
    for n in range(count):
        with Path(tmp, f"daemon{n}.log").open("w") as log:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "harvester", "--config", str(path), "run"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)


def wait_delivered(inst: Any, total: int, timeout: float) -> tuple[float, int]:
    """Seconds until ``total`` distinct builds were accepted, and how many were accepted twice."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        accepted = inst.ask("accepted")
        distinct = {(job, number) for job, number, _ in accepted}
        if len(distinct) >= total:
            return time.perf_counter() - start, len(accepted) - len(distinct)
        time.sleep(0.25)
    raise SystemExit(f"not delivered within {timeout:.0f} s")


def bench_replicas(args: argparse.Namespace) -> None:
    from bench.run import Shape, instance, machine  # noqa: PLC0415

    shape = Shape(args.jobs, args.builds, args.stages, args.steps, args.latency_ms)
    total = args.jobs * args.builds
    rows = []
    with postgres_server() as base:
        for n, replicas in enumerate((1, 2)):
            with instance(shape) as inst, tempfile.TemporaryDirectory() as tmp:
                config = _config(inst, tmp, create_database(base, f"bench{n}"), args)
                t0 = time.perf_counter()
                with daemons(config, replicas, tmp):
                    took, twice = wait_delivered(inst, total, 900)
                    catch_up_requests = sum(inst.counts().values())
                    time.sleep(args.idle_cycles * args.interval)
                    requests = sum(inst.counts().values())
                rows.append((replicas, took, twice, catch_up_requests, requests))
                del t0
        failovers = []
        for how in (signal.SIGKILL, signal.SIGSTOP):
            with instance(shape) as inst, tempfile.TemporaryDirectory() as tmp:
                config = _config(inst, tmp, create_database(base, f"failover{how.value}"), args)
                with daemons(config, 2, tmp) as procs:
                    while len(inst.ask("accepted")) < total // 2:
                        time.sleep(0.1)
                    procs[0].send_signal(how)
                    failovers.append((how, *wait_delivered(inst, total, 900)))
                    procs[0].kill()
    print(f"machine: {machine()}")
    print(
        f"replicas: {args.jobs} jobs x {args.builds} builds, {args.stages} stages x {args.steps} "
        f"steps, {args.latency_ms:g} ms per Jenkins request, jenkins.max_concurrency "
        f"{args.concurrency}, harvest.interval_seconds {args.interval:g}, one PostgreSQL ledger"
    )
    one = rows[0]
    for replicas, took, twice, catch_up_requests, requests in rows:
        print(
            f"  {replicas} replica(s): history delivered in {took:.1f} s "
            f"({took / one[1]:.2f} x one replica), {twice} sent twice; Jenkins requests "
            f"{catch_up_requests} for the history ({catch_up_requests / one[3]:.3f} x), "
            f"{requests} with {args.idle_cycles} idle cycles ({requests / one[4]:.3f} x)"
        )
    for how, failover, twice in failovers:
        what = (
            "SIGKILL (seen dead at once: same host)"
            if how == signal.SIGKILL
            else "SIGSTOP (a partition: dead after 3 intervals without a heartbeat)"
        )
        print(
            f"  failover, {what} of one of 2 replicas half-way: the last build delivered "
            f"{failover:.1f} s later ({failover / args.interval:.1f} intervals), {twice} sent twice"
        )


def _config(inst: Any, tmp: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    return inst.config(  # type: ignore[no-any-return]
        tmp,
        jenkins={"name": "bench", "max_concurrency": args.concurrency},
        sei={"max_concurrency": 4, "max_requests_per_minute": 0},
        harvest={"interval_seconds": args.interval, "since": "3650d"},
        ledger={"url": url},
    )
