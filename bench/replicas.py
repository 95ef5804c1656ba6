"""Replicas on one PostgreSQL ledger (issues 13, 21): one daemon, then two (one active, one
standby), side by side on the same instance shape, from first start (the history: a catch-up by the
daemons' first cycles) through a few idle cycles; then the failover of the active replica
half-way through the history: SIGKILL, SIGSTOP, and its database connection cut (a partition).

The PostgreSQL server is the tests' own throw-away one (tests/pgserver.py), started here, and so is
the loopback proxy that cuts one replica off (tests/helpers.py)."""

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

from tests.helpers import TcpProxy
from tests.pgserver import create_database, postgres_server


@contextmanager
def daemons(
    config: dict[str, Any] | list[dict[str, Any]], count: int, tmp: str
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` daemons, on one config or one each."""
    procs = []
    for n in range(count):
        path = Path(tmp, f"config{n}.json")
        path.write_text(json.dumps(config[n] if isinstance(config, list) else config))
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
        for how in ("SIGKILL", "SIGSTOP", "partition"):
            with instance(shape) as inst, tempfile.TemporaryDirectory() as tmp:
                url = create_database(base, f"failover_{how.lower()}")
                server, _, name = url.rpartition("/")
                host, _, port = server.rpartition(":")
                proxies = [TcpProxy(int(port)) for _ in range(2)]
                configs = [_config(inst, tmp, f"{host}:{p.port}/{name}", args) for p in proxies]
                with daemons(configs, 2, tmp) as procs:
                    while len(inst.ask("accepted")) < total // 2:
                        time.sleep(0.1)
                    active = _active(url, procs)
                    at = time.time()
                    if how == "partition":
                        proxies[active].cut()
                    else:
                        procs[active].send_signal(getattr(signal, how))
                    _, twice = wait_delivered(inst, total, 900)
                    times = sorted(when for _, _, when in inst.ask("accepted"))
                    before = max(t for t in times if t <= at)
                    after = min(t for t in times if t > at)
                    failovers.append((how, after - before, twice))
                    procs[active].kill()
                for proxy in proxies:
                    proxy.close()
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
        print(
            f"  failover, {how} of the active replica half-way through the history: from the "
            f"last build it delivered to the first the new one delivered {failover:.1f} s "
            f"({failover / args.interval:.2f} intervals), {twice} sent twice"
        )


def _active(url: str, procs: list[subprocess.Popen[bytes]]) -> int:
    """Which of ``procs`` holds the lease (the active replica)."""
    from harvester.ledger import Ledger  # noqa: PLC0415

    ledger = Ledger.open(url, controller="bench", migrate=False)
    try:
        holder, _ = ledger.lease_holder()
        pid = {r.id: r.pid for r in ledger.replicas()}[holder or ""]
    finally:
        ledger.close()
    return next(n for n, proc in enumerate(procs) if proc.pid == pid)


def _config(inst: Any, tmp: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    return inst.config(  # type: ignore[no-any-return]
        tmp,
        jenkins={"name": "bench", "max_concurrency": args.concurrency},
        sei={"max_concurrency": 4, "max_requests_per_minute": 0},
        harvest={"interval_seconds": args.interval, "since": "3650d"},
        ledger={"url": url},
    )
