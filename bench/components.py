"""Where a build's CPU goes: each step of collecting and delivering one build, timed on its own in
one thread, then one Jenkins request timed with 1, 2, 4 and 8 threads issuing them at once (the cost
of CPython handing the GIL between threads at every blocking call).

    python bench/components.py

The simulator and receiver run in a child process (see run.py); nothing here is timed against them.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import Shape, instance, machine

from harvester.app import build_harvester, close_harvester
from harvester.attempt import Attempt
from harvester.config import settings_from_mapping
from harvester.jenkins.models import Build
from harvester.ledger import LedgerEntry
from harvester.sei.mapping import map_build
from harvester.sei.payload import payload_json


def cpu_ms(label: str, times: int, step: Callable[[int], object], per: int = 1) -> float:
    start = time.process_time()
    for i in range(times):
        step(i)
    each = (time.process_time() - start) * 1000 / (times * per)
    print(f"  {label:44} {each:6.3f} ms")
    return each


def main() -> None:
    shape = Shape(jobs=20, builds=20, stages=5, steps=4, latency_ms=0)
    with instance(shape) as inst, tempfile.TemporaryDirectory() as tmp:
        settings = settings_from_mapping(inst.config(tmp, jenkins={"max_concurrency": 8}))
        harvester = build_harvester(settings, threading.Event())
        collector = harvester.collector()
        job = collector.discover()[0]
        jenkins = harvester.jenkins
        print(f"machine: {machine()}")
        print(f"one build, {shape.stages} stages x {shape.steps} steps, one thread, CPU per build:")
        for i in range(20):  # warm up connections and caches
            jenkins.pipeline_run(job.full_name, 1 + i % 20)
        total = cpu_ms(
            "builds page (20 builds), per build",
            50,
            lambda _: jenkins.builds_page(job.full_name, 0, 20),
            per=20,
        )
        total += cpu_ms(
            "wfapi/describe GET, parsed and validated",
            400,
            lambda i: jenkins.pipeline_run(job.full_name, 1 + i % 20),
        )
        page = jenkins.builds_page(job.full_name, 0, 20)
        run = jenkins.pipeline_run(job.full_name, 1)
        assert run is not None
        build = Build.model_validate(page[0])
        ref = collector.job_ref(job)
        total += cpu_ms(
            "validate build, map, payload JSON",
            2000,
            lambda i: payload_json(
                map_build(
                    ref,
                    Build.model_validate(page[i % 20]),
                    rules=collector.rules,
                    user_id=collector.user_id(build),
                    pipeline_run=run,
                )
            ),
        )
        body = payload_json(
            map_build(ref, build, rules=collector.rules, user_id="u", pipeline_run=run)
        )
        row = collector.new_build(
            job, build, map_build(ref, build, rules=collector.rules, user_id="u")
        )
        row = dataclasses.replace(row, payload=body)
        now = datetime.now(tz=UTC)
        total += cpu_ms(
            "ledger: insert pending (pages of 20)",
            50,
            lambda i: harvester.ledger.add_pending(
                [dataclasses.replace(row, number=10_000 + i * 20 + k) for k in range(20)], now=now
            ),
            per=20,
        )
        claimed: list[LedgerEntry] = []
        total += cpu_ms(
            "ledger: claim (batches of 32)",
            30,
            lambda _: claimed.extend(harvester.ledger.claim_due(now, 32, "bench")),
            per=32,
        )
        total += cpu_ms("webhook POST (httpx)", 500, lambda _: harvester.webhook.post_once(body))
        total += cpu_ms(
            "ledger: record the attempt",
            500,
            lambda i: harvester.ledger.record_attempt(
                claimed[i].id,
                Attempt("sent", 202, None, 1),
                now=now,
                max_attempts=10,
                owner="bench",
            ),
        )
        print(f"  {'sum: one build with no other thread running':44} {total:6.3f} ms")

        print("one wfapi GET with N threads issuing them at once, CPU per request:")
        count = 300
        for threads in (1, 2, 4, 8):

            def work() -> None:
                for i in range(count):
                    jenkins.pipeline_run(job.full_name, 1 + i % 20)

            start = time.process_time()
            pool = [threading.Thread(target=work) for _ in range(threads)]
            for thread in pool:
                thread.start()
            for thread in pool:
                thread.join()
            each = (time.process_time() - start) * 1000 / (count * threads)
            print(f"  {threads} thread(s): {each:.3f} ms")
        close_harvester(harvester)


if __name__ == "__main__":
    main()
