"""The status page on a ledger of 1,000,000 rows (issue 23): how long each view takes to render,
measured over real HTTP on loopback (the daemon's own server), first request and warm.

    python bench/statuspage.py [--rows 1000000] [--db PATH]

The ledger is SQLite (the default backend), filled directly through the schema's tables: 2,000
jobs, one delivery attempt per row over the last 7 days (about 143,000 in the chart's 24 hours),
1,000 dead rows, 5,000 pending, 50 held builds.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from harvester.daemon.metrics import Metrics
from harvester.daemon.status import StatusServer
from harvester.ledger import Ledger
from harvester.web.page import StatusPage, job_path
from harvester.web.views import Views

JOBS = 2000
PAYLOAD = json.dumps({"pipeline": "x" * 40, "result": "success", "stages": []})


def fill(path: Path, rows: int) -> None:
    Ledger.open(f"sqlite:///{path}", controller="bench").close()  # the schema, migrated
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    now = datetime.now(tz=UTC)
    span = timedelta(days=7).total_seconds()

    def stamp(moment: datetime) -> str:
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f")

    builds, payloads, attempts = [], [], []
    for i in range(1, rows + 1):
        job = f"org{i % 20}/team{i % 100}/job{i % JOBS}"
        number = i // JOBS + 1
        started = now - timedelta(seconds=span * (1 - i / rows))
        status = "dead" if i % 1000 == 0 else "pending" if i > rows - 5000 else "sent"
        error = "HTTP 400: missing field pipeline" if status == "dead" else None
        builds.append(
            (
                i,
                "bench",
                job,
                number,
                status,
                "SUCCESS",
                1,
                stamp(started),
                stamp(started),
                stamp(started) if status == "sent" else None,
                stamp(started),
                error,
            )
        )
        payloads.append((i, PAYLOAD))
        outcome = {"sent": "sent", "dead": "dead", "pending": "retry"}[status]
        attempts.append((i, stamp(started), outcome, 202 if outcome == "sent" else 503, 12))
        if len(builds) == 50_000 or i == rows:
            db.executemany(
                "INSERT INTO builds (id, controller, job, number, status, result, attempts, "
                "started_at, collected_at, sent_at, next_attempt_at, last_error) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                builds,
            )
            db.executemany("INSERT INTO build_payloads (build_id, payload) VALUES (?,?)", payloads)
            db.executemany(
                "INSERT INTO delivery_attempts (build_id, attempted_at, outcome, http_status, "
                "duration_ms) VALUES (?,?,?,?,?)",
                attempts,
            )
            builds, payloads, attempts = [], [], []
    db.executemany(
        "INSERT INTO job_cursors (controller, job, last_number, updated_at) VALUES (?,?,?,?)",
        [
            ("bench", f"org{j % 20}/team{j % 100}/job{j}", rows // JOBS, stamp(now))
            for j in range(JOBS)
        ],
    )
    db.executemany(
        "INSERT INTO held_builds (controller, job, number, held_since, reason) VALUES (?,?,?,?,?)",
        [
            (
                "bench",
                f"org{j % 20}/team{j % 100}/job{j}",
                rows // JOBS + 1,
                stamp(now),
                "still running",
            )
            for j in range(50)
        ],
    )
    db.commit()
    db.execute("ANALYZE")
    db.close()


def live() -> dict[str, object]:
    return {
        "healthy": True,
        "health": {"status": "ok"},
        "role": "active",
        "jenkins_in_flight": 0,
        "jenkins_limit": 4,
        "delivery_state": "flowing",
        "delivery_note": "paced at 900/min",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp()
    path = args.db or Path(tmp, "ledger.db")
    if not path.exists():
        started = time.perf_counter()
        fill(path, args.rows)
        print(
            f"filled {args.rows:,} rows in {time.perf_counter() - started:.0f} s, "
            f"{path.stat().st_size / 1e6:.0f} MB"
        )
    ledger = Ledger.open(f"sqlite:///{path}", controller="bench")
    deep = ledger.rows(status="sent", limit=1, after=None)[0]
    # A key half-way down the sent rows: "any page" is as cheap as the first.
    middle = ledger.rows(jobs=["org10/team10/job10"], limit=260)[-1].key
    job = "org7/team7/job7"
    number = ledger.rows(jobs=[job], limit=1)[0].number
    urls = {
        "overview /": "/",
        "overview /api/overview": "/api/overview",
        "sent, first page": "/builds?status=sent",
        "sent, a page half-way down": "/builds?"
        + str(httpx.QueryParams(status="sent", after=middle)),
        "all builds, a page half-way down": "/builds?" + str(httpx.QueryParams(after=middle)),
        "dead": "/builds?status=dead",
        "pending": "/builds?status=pending",
        "held": "/held",
        "job view (500 builds)": f"/jobs/{job_path(job)}",
        "build view": f"/builds/{job_path(job)}/{number}",
        "search org1/** (100 jobs) #42": "/search?job=org1/**&build=42",
        "search ** (2,000 jobs)": "/search?job=**",
    }
    del deep
    views = Views(ledger, live)
    started = time.perf_counter()
    views.warm()  # as the daemon does in the background at start
    print(
        f"the chart's 24 hours read ahead (in the background at start): "
        f"{(time.perf_counter() - started) * 1000:.0f} ms"
    )
    page = StatusPage(views)
    with StatusServer(("127.0.0.1", 0), Metrics(), lambda: (True, {}), page=page) as server:
        client = httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=60)
        print("| view | first request | warm, median of 5 | size |\n|---|---|---|---|")
        for name, url in urls.items():
            started = time.perf_counter()
            answer = client.get(url)
            first = time.perf_counter() - started
            assert answer.status_code == 200, (url, answer.status_code, answer.text[:300])
            warm = []
            for _ in range(5):
                started = time.perf_counter()
                client.get(url)
                warm.append(time.perf_counter() - started)
            print(
                f"| {name} | {first * 1000:.0f} ms | {statistics.median(warm) * 1000:.0f} ms "
                f"| {len(answer.content) / 1024:.0f} KiB |"
            )
    ledger.close()


if __name__ == "__main__":
    main()
