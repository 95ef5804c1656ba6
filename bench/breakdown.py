"""Where the CPU of the real catch-up goes (issue 14): the catch-up of ``bench/run.py catch-up``,
with the harvester's own functions wrapped so that each thread's CPU time (``time.thread_time``) is
charged to the innermost part running. Each part's time is exclusive: the JSON parse of a wfapi
GET is charged to "JSON parse", not also to the GET. What no part claims is the threads' and
pools' own work, the GIL hand-offs, the scheduler and the glue between the parts.

The wrappers cost about 1 µs per call (a few per build); the total CPU of the run is printed
beside the uninstrumented run of the same shape for comparison."""

from __future__ import annotations

import argparse
import functools
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

PARTS: list[tuple[str, str, str]] = [
    # Each: the part as printed, its module, and the method whose CPU is charged to it.
    (
        "Jenkins GET (python-jenkins on requests)",
        "harvester.jenkins.client",
        "JenkinsClient._send",
    ),
    ("JSON parse of Jenkins' answers", "harvester.jenkins.client", "JenkinsClient.get_json"),
    ("validation of builds (pydantic)", "harvester.collect.collector", "Collector.parse_build"),
    (
        "wfapi JSON parsed and validated (pydantic-core)",
        "harvester.jenkins.client",
        "JenkinsClient.pipeline_run",
    ),
    ("mapping (stages, steps, payload dicts)", "harvester.collect.details", "BuildDetails.payload"),
    # A function the collector imported: wrapped where it is called from.
    ("payload JSON serialization", "harvester.collect.collector", "payload_json"),
    ("ledger writes while collecting", "harvester.ledger.store", "Ledger.add_pending"),
    ("ledger reads while collecting", "harvester.ledger.store", "Ledger.known"),
    ("claiming rows", "harvester.ledger.store", "Ledger.claim_due"),
    ("recording a delivery (one transaction)", "harvester.ledger.store", "Ledger.record_attempt"),
    ("webhook POST (httpx)", "harvester.sei.webhook", "WebhookClient.post_once"),
    ("retry wrapper (stamina) around the POST", "harvester.sei.webhook", "WebhookClient.deliver"),
    ("send-time envelope", "harvester.sei.envelope", "Envelope.__call__"),
    ("pacing gate", "harvester.delivery.gate", "DeliveryGate.wait_turn"),
]


class Accounts:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._local = threading.local()

    def wrap(self, part: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def charged(*args: Any, **kwargs: Any) -> Any:
            stack = self._local.__dict__.setdefault("stack", [])
            now = time.thread_time()
            if stack:  # the part around this one stops being charged meanwhile
                outer = stack[-1]
                self._charge(outer[0], now - outer[1])
            stack.append([part, now])
            try:
                return function(*args, **kwargs)
            finally:
                now = time.thread_time()
                self._charge(part, now - stack.pop()[1])
                with self._lock:
                    self.calls[part] += 1
                if stack:
                    stack[-1][1] = now

        return charged

    def _charge(self, part: str, seconds: float) -> None:
        with self._lock:
            self.seconds[part] += seconds


def instrument() -> Accounts:
    import importlib  # noqa: PLC0415

    accounts = Accounts()
    for part, module, qualified in PARTS:
        owner: Any = importlib.import_module(module)
        *owners, name = qualified.split(".")
        for owner_name in owners:
            owner = getattr(owner, owner_name)
        setattr(owner, name, accounts.wrap(part, getattr(owner, name)))
    return accounts


def bench_breakdown(args: argparse.Namespace) -> None:
    from bench.run import Shape, instance, machine, timed_catch_up  # noqa: PLC0415

    accounts = instrument()  # before anything is built from the classes
    from harvester.app import build_harvester, close_harvester  # noqa: PLC0415
    from harvester.config import settings_from_mapping  # noqa: PLC0415

    shape = Shape(args.jobs, args.builds, args.stages, args.steps, args.latency_ms)
    with instance(shape) as inst, tempfile.TemporaryDirectory() as tmp:
        settings = settings_from_mapping(
            inst.config(
                tmp,
                jenkins={"max_concurrency": args.concurrency},
                sei={"max_concurrency": args.sei_concurrency, "max_requests_per_minute": 0},
            )
        )
        harvester = build_harvester(settings, threading.Event(), "catch-up")
        result, wall, cpu = timed_catch_up(
            harvester, args, datetime.now(tz=UTC), leave_cursors=True
        )
        requests = sum(inst.counts().values())
        close_harvester(harvester)
    builds = max(result.collect.builds_collected, 1)
    bound = requests * args.latency_ms / 1000 / args.concurrency
    print(f"machine: {machine()}")
    print(
        f"breakdown: the catch-up of {args.jobs} jobs x {args.builds} builds, {args.stages} stages "
        f"x {args.steps} steps, {args.latency_ms:g} ms per request, jenkins.max_concurrency "
        f"{args.concurrency}, sei.max_concurrency {args.sei_concurrency}, pacing off"
    )
    print(
        f"  {builds} builds, wall {wall:.1f} s = {wall / max(bound, 1e-9):.2f} x the latency bound; "
        f"CPU {cpu:.1f} s = {cpu * 1e6 / builds:.0f} µs/build"
    )
    print("  | part | µs/build | calls/build |")
    print("  |---|---|---|")
    claimed = 0.0
    for part, seconds in sorted(accounts.seconds.items(), key=lambda item: -item[1]):
        claimed += seconds
        print(f"  | {part} | {seconds * 1e6 / builds:.0f} | {accounts.calls[part] / builds:.2f} |")
    print(
        f"  | threads, pools, GIL hand-offs, glue (the rest) | {(cpu - claimed) * 1e6 / builds:.0f} | |"
    )
