"""The status page over real HTTP on loopback, on a real ledger: every view, its JSON twin,
pagination, escaping, and the admin POSTs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from harvester.attempt import Attempt
from harvester.daemon.metrics import Metrics
from harvester.daemon.status import StatusServer
from harvester.ledger import Ledger, NewBuild
from harvester.web.chart import chart
from harvester.web.page import StatusPage, job_path
from harvester.web.views import Views

NOW = datetime.now(tz=UTC).replace(microsecond=0)
TOKEN = "0123456789abcdef-admin"
EVIL = '<img src=x onerror="document.body.dataset.pwned=1">/<script>alert(1)</script>'


def live() -> dict[str, Any]:
    return {
        "healthy": False,
        "health": {"status": "unhealthy", "reason": "cannot connect to Jenkins"},
        "role": "active",
        "jenkins_in_flight": 2,
        "jenkins_limit": 4,
        "delivery_state": "paused",
        "delivery_note": "the receiver answered 429: every worker waits 5 s",
    }


def new(job: str, number: int, minutes_ago: float = 0) -> NewBuild:
    return NewBuild(
        job,
        number,
        "FAILURE",
        json.dumps({"job_full_name": job, "build_number": number}),
        NOW - timedelta(minutes=minutes_ago),
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    opened = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}", controller="ci")
    yield opened
    opened.close()


def serve(ledger: Ledger, token: str | None = None) -> StatusServer:
    page = StatusPage(Views(ledger, live), admin_token=token)
    return StatusServer(("127.0.0.1", 0), Metrics(), lambda: (True, {}), page=page).start()


@pytest.fixture
def seeded(ledger: Ledger) -> Ledger:
    """60 sent builds of team/app, one dead build of the evil job, one held build."""
    ledger.add_pending([new("team/app", n, minutes_ago=100 - n) for n in range(1, 61)], now=NOW)
    ledger.add_pending([new(EVIL, 7)], now=NOW, hold=[("team/app", 61, "still running")])
    for row in ledger.claim_due(NOW + timedelta(hours=1), 100, "t"):
        if row.job == EVIL:
            outcome = Attempt("dead", 400, "missing field: <b>pipeline</b>", 3)
        else:
            outcome = Attempt("sent", 202, None, 3)
        ledger.record_attempt(row.id, outcome, now=NOW, max_attempts=3, owner="t")
    return ledger


def get(server: StatusServer, path: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{server.port}{path}", timeout=10)


def test_overview_counts_chart_and_dead_row_escaped(seeded: Ledger) -> None:
    with serve(seeded) as server:
        answer = get(server, "/")
        api = get(server, "/api/overview").json()
    assert answer.status_code == 200
    assert "script-src" not in answer.headers["content-security-policy"]  # no script at all
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    html = answer.text
    assert api["counts"] == {"pending": 0, "sent": 60, "dead": 1, "skipped": 0}
    assert api["held"] == 1
    assert api["chart"]["delivered"] == 60
    assert api["chart"]["failed"] == 1
    assert re.search(r'id="count-sent".*?>60</a>', html, re.S)
    assert 'class="delivered" d="M' in html
    assert "cannot connect to Jenkins" in html  # the health's reason
    assert "2 / 4" in html  # Jenkins requests in flight
    assert "every worker waits 5 s" in html
    # Values from Jenkins and the receiver are text, never markup.
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=" in html
    assert "missing field: &lt;b&gt;pipeline&lt;/b&gt;" in html
    # Without server.admin_token the page offers no change.
    assert "<form" not in html.replace('<form action="/search"', "")


def test_tables_page_by_key_and_link_to_jobs_and_builds(seeded: Ledger) -> None:
    with serve(seeded) as server:
        first = get(server, "/api/builds?status=sent").json()
        second = get(
            server, "/api/builds?" + str(httpx.QueryParams(status="sent", after=first["next"]))
        ).json()
        html = get(server, "/builds?status=sent").text
        dead = get(server, "/builds?status=dead").text
        held = get(server, "/held").text
        bad = get(server, "/builds?status=lost")
    numbers = [row["build"] for row in first["rows"] + second["rows"]]
    assert len(first["rows"]) == 50
    assert second["next"] is None
    assert sorted(numbers) == list(range(1, 61))
    assert numbers[0] == 60  # newest first
    # A row has the keys `ledger list --json` gives it, and its age.
    assert set(first["rows"][0]) == {*seeded.entries(limit=1)[0].as_json(), "age"}
    assert 'rel="next"' in html
    assert 'href="/builds/team/app/60"' in html
    assert f'href="/jobs/{job_path(EVIL).replace("&", "&amp;")}"' in dead
    assert "still running" in held
    assert bad.status_code == 400
    assert "status: one of pending, sent, dead, skipped" in bad.text


def test_job_build_and_search_views(seeded: Ledger) -> None:
    with serve(seeded) as server:
        job = get(server, "/api/jobs/team/app").json()
        job_html = get(server, "/jobs/team/app").text
        build = get(server, f"/api/builds/{job_path(EVIL)}/7").json()
        build_html = get(server, f"/builds/{job_path(EVIL)}/7").text
        search = get(server, "/api/search?job=team/*&build=42").json()
        everything = get(server, "/api/search?job=**").json()
        unknown = get(server, "/builds/team/app/999")
        unknown_json = get(server, "/api/jobs/nope")
    assert job["cursor"] is None  # no cursor was written in this seed
    assert [(h["number"], h["reason"]) for h in job["held"]] == [(61, "still running")]
    assert "still running" in job_html
    assert build["status"] == "dead"
    assert build["payload"]["job_full_name"] == EVIL
    assert [a["outcome"] for a in build["history"]] == ["dead"]
    assert "&lt;script&gt;" in build_html
    assert "<script>" not in build_html
    assert [(r["job"], r["build"]) for r in search["rows"]] == [("team/app", 42)]
    assert everything["jobs_matched"] == 1  # only team/app has a cursor or a hold
    assert unknown.status_code == 404
    assert "no build team/app #999" in unknown.text
    assert unknown_json.status_code == 404
    assert unknown_json.json() == {"error": "the ledger knows no job 'nope'"}


def test_changes_need_the_admin_token_and_are_recorded(seeded: Ledger) -> None:
    form = {"job": EVIL, "build": "7"}
    with serve(seeded) as server:
        refused = httpx.post(f"http://127.0.0.1:{server.port}/actions/retry", data=form, timeout=10)
    assert refused.status_code == 403
    assert "read-only" in refused.text
    with serve(seeded, TOKEN) as server:
        url = f"http://127.0.0.1:{server.port}"
        assert 'name="token"' in get(server, f"/builds/{job_path(EVIL)}/7").text
        wrong = httpx.post(f"{url}/actions/retry", data={**form, "token": "nope"}, timeout=10)
        assert wrong.status_code == 403
        assert seeded.entry(EVIL, 7).status == "dead"  # type: ignore[union-attr]
        done = httpx.post(f"{url}/actions/retry", data={**form, "token": TOKEN}, timeout=10)
        assert done.status_code == 303
        assert done.headers["location"] == f"/builds/{job_path(EVIL)}/7"
        entry = seeded.entry(EVIL, 7)
        assert entry is not None
        assert entry.status == "pending"
        assert seeded.history(entry.id)[-1].error == "status page: dead -> pending, attempts reset"
        forgot = httpx.post(
            f"{url}/actions/forget", data={"job": "team/app", "build": "5", "token": TOKEN}
        )
        assert forgot.status_code == 303
        assert seeded.entry("team/app", 5) is None
        big = httpx.post(f"{url}/actions/retry", content=b"x" * 9000, timeout=10)
        assert big.status_code == 413


def test_chart_geometry_from_counts() -> None:
    now = datetime(2026, 12, 7, 12, 30, 15, tzinfo=UTC)
    drawn = chart(
        {"2026-12-07 12:30": (4, 1), "2026-12-07 12:00": (2, 0), "2026-12-06 12:30": (9, 9)}, now
    )
    assert (drawn.delivered, drawn.failed, drawn.peak) == (6, 1, 4)  # 24 h ago is outside
    assert drawn.start == datetime(2026, 12, 6, 12, 31, tzinfo=UTC)
    assert drawn.delivered_path.endswith("L720.0,0.0")  # the last minute is the peak
    assert [label for _, label in drawn.hours] == ["18:00", "00:00", "06:00", "12:00"]
    empty = chart({}, now)
    assert (empty.peak, empty.delivered_path) == (0, "M0.0,120.0 L720.0,120.0")
