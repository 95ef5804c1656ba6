"""The naive baseline the benchmark compares against: what a first exporter written with
python-jenkins' high-level calls does. For every job: ``get_job_info``; for every build in it:
``get_build_info``; for every Pipeline build: ``get_build_stages`` and one node describe per stage
(``get_build_stages`` has no steps; a stage's steps need its own ``execution/node/<id>/wfapi/describe``).

It only reads (it maps and sends nothing), so its wall time is a lower bound for such an exporter and
the ratios printed beside it are conservative. It runs at the same concurrency as the harvester: a
pool of ``concurrency`` threads over the jobs, each thread with its own client.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import jenkins  # python-jenkins
import requests


@dataclass
class NaiveResult:
    wall_seconds: float
    cpu_seconds: float
    builds: int


def run_naive(
    url: str, username: str, token: str, *, since_ms: int, until_ms: int, concurrency: int
) -> NaiveResult:
    local = threading.local()

    def server() -> jenkins.Jenkins:
        if not hasattr(local, "server"):
            local.server = jenkins.Jenkins(url, username=username, password=token, timeout=30)
        return local.server

    builds = 0
    lock = threading.Lock()

    def one_job(full_name: str) -> None:
        nonlocal builds
        client = server()
        info = client.get_job_info(full_name)
        pipeline = info.get("_class", "").endswith("WorkflowJob")
        for ref in info.get("builds", []):
            build = client.get_build_info(full_name, ref["number"])
            if build.get("inProgress", build.get("building")):
                continue
            if not since_ms <= build["timestamp"] < until_ms:
                continue
            if pipeline:
                run: dict[str, Any] = client.get_build_stages(full_name, ref["number"])
                for stage in run.get("stages", []):
                    href = stage["_links"]["self"]["href"]
                    client.jenkins_open(requests.Request("GET", url.rstrip("/") + href))
            with lock:
                builds += 1

    cpu0, wall0 = time.process_time(), time.perf_counter()
    listing = jenkins.Jenkins(url, username=username, password=token, timeout=30)
    jobs = [job["fullname"] for job in listing.get_all_jobs() if "jobs" not in job]
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(one_job, name) for name in jobs]:
            future.result()
    return NaiveResult(time.perf_counter() - wall0, time.process_time() - cpu0, builds)
