"""What the status page and ``ledger jobs`` read, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from harvester.attempt import Attempt
from harvester.ledger import Ledger, NewBuild

NOW = datetime(2026, 11, 28, 12, 0, 30, tzinfo=UTC)


def build(job: str, number: int, minutes_ago: float = 0) -> NewBuild:
    return NewBuild(
        job, number, "SUCCESS", f'{{"build_number":{number}}}', NOW - timedelta(minutes=minutes_ago)
    )


def test_pages_by_key_cover_every_row_once_newest_first(ledger: Ledger) -> None:
    # 120 rows, several starting at the same moment: the key breaks ties by id.
    builds = [build("a", n, minutes_ago=(120 - n) // 3) for n in range(1, 121)]
    ledger.add_pending(builds, now=NOW)
    seen: list[int] = []
    after = None
    pages = 0
    while True:
        page = ledger.rows(after=after, limit=50)
        seen += [row.number for row in page]
        pages += 1
        if len(page) < 50:
            break
        after = page[-1].key
    assert pages == 3
    assert sorted(seen) == list(range(1, 121))
    assert len(seen) == len(set(seen))
    started = [ledger.entry("a", n).started_at for n in seen]  # type: ignore[union-attr]
    assert started == sorted(started, reverse=True)
    assert ledger.rows(after="not a key", limit=5)[0].number == seen[0]  # a bad key: page one


def test_rows_filter_by_status_jobs_and_number(ledger: Ledger) -> None:
    ledger.add_pending([build("a", 1), build("a", 2), build("b", 2)], now=NOW)
    (row,) = ledger.claim_due(NOW, 1, "t")
    ledger.record_attempt(
        row.id, Attempt("dead", 400, "bad", 1), now=NOW, max_attempts=3, owner="t"
    )
    assert [(r.job, r.number) for r in ledger.rows(status="dead")] == [(row.job, row.number)]
    assert {(r.job, r.number) for r in ledger.rows(jobs=["b"])} == {("b", 2)}
    assert {(r.job, r.number) for r in ledger.rows(number=2)} == {("a", 2), ("b", 2)}
    assert ledger.rows(jobs=[]) == []


def test_held_builds_keep_why_and_since_and_jobs_show_them(ledger: Ledger) -> None:
    later = NOW + timedelta(minutes=5)
    ledger.add_pending([], now=NOW, hold=[("a", 3, "still running")], cursor=("a", 4))
    ledger.add_pending([], now=later, hold=[("a", 3, "wfapi answered 503")])
    (held,) = ledger.held_builds()
    assert (held.job, held.number, held.reason, held.since) == ("a", 3, "wfapi answered 503", NOW)
    ledger.add_pending([build("b", 1)], now=NOW, cursor=("b", 1))
    summaries = {s.job: s for s in ledger.job_summaries(last_collected=True)}
    assert summaries["a"].cursor == 4
    assert [h.number for h in summaries["a"].held] == [3]
    assert summaries["a"].last_collected_at is None
    assert summaries["b"].last_collected_at == NOW
    assert [s.job for s in ledger.job_summaries(["b"])] == ["b"]
    assert ledger.job_names() == ["a", "b"]


def test_retry_and_forget_are_in_the_rows_history(ledger: Ledger) -> None:
    ledger.add_pending([build("a", 1)], now=NOW, cursor=("a", 1))
    (row,) = ledger.claim_due(NOW, 1, "t")
    ledger.record_attempt(
        row.id, Attempt("dead", 400, "bad", 1), now=NOW, max_attempts=3, owner="t"
    )
    assert ledger.retry([row.id], NOW, by="status page") == 1
    assert [(a.outcome, a.error) for a in ledger.history(row.id)][-1] == (
        "operator",
        "status page: dead -> pending, attempts reset",
    )
    assert ledger.forget("a", 1, NOW)
    assert ledger.cursors() == {"a": 0}
    # Collected again: the new row's history starts with the forget.
    ledger.add_pending([build("a", 1)], now=NOW + timedelta(minutes=1), cursor=("a", 1))
    entry = ledger.entry("a", 1)
    assert entry is not None
    (first,) = ledger.history(entry.id)
    assert first.outcome == "operator"
    assert first.error is not None
    assert first.error.startswith("ledger forget: the row was pending after 1 attempt(s)")
    # Once: a later row of the same number does not get it again.
    ledger.forget("a", 1, NOW)
    ledger.add_pending([build("a", 1)], now=NOW, cursor=("a", 1))
    again = ledger.entry("a", 1)
    assert again is not None
    assert [a.outcome for a in ledger.history(again.id)] == ["operator"]


def test_per_minute_counts_sent_and_failed_attempts_and_the_last_cycle(ledger: Ledger) -> None:
    ledger.add_pending([build("a", n) for n in range(1, 5)], now=NOW)
    rows = ledger.claim_due(NOW, 4, "t")
    outcomes = ["sent", "sent", "retry", "throttled"]
    for row, outcome, minutes in zip(rows, outcomes, [0, 0, 0, 2], strict=True):
        at = NOW + timedelta(minutes=minutes)
        status = 202 if outcome == "sent" else 503
        ledger.record_attempt(
            row.id,
            Attempt(outcome, status, None, 1, next_attempt_at=at),
            now=at,
            max_attempts=9,
            owner="t",  # type: ignore[arg-type]
        )
    ledger.retry([], NOW)  # nothing: no operator row either
    counts = ledger.per_minute(NOW - timedelta(minutes=10))
    assert counts == {"2026-11-28 12:00": (2, 1), "2026-11-28 12:02": (0, 1)}
    assert ledger.per_minute(NOW + timedelta(minutes=1)) == {"2026-11-28 12:02": (0, 1)}
    assert ledger.last_cycle() is None
    ledger.record_cycle(
        kind="cycle",
        started_at=NOW,
        finished_at=NOW + timedelta(seconds=3),
        succeeded=True,
        collected=4,
        delivered=2,
        failed=2,
        jenkins_requests=9,
    )
    cycle = ledger.last_cycle()
    assert cycle is not None
    assert (cycle.collected, cycle.delivered, cycle.jenkins_requests) == (4, 2, 9)


def test_the_plugin_channels_files_are_stored_with_the_row_and_read_when_sent(
    ledger: Ledger,
) -> None:
    zipped = bytes(range(256)) * 4  # binary, as a zip is
    with_files = NewBuild("a", 1, "FAILURE", "{}", NOW, files=zipped, files_summary='{"logs":[]}')
    ledger.add_pending([with_files, build("a", 2)], now=NOW)
    (claimed, plain) = sorted(ledger.claim_due(NOW, 2, "t"), key=lambda e: e.number)
    # A claim carries what the files hold; the zip is read when the build is sent.
    assert claimed.files_summary == '{"logs":[]}'
    assert ledger.files_data(claimed.id) == zipped
    assert (plain.files_summary, ledger.files_data(plain.id)) == (None, None)
    entry = ledger.entry("a", 1)
    assert entry is not None and entry.files_summary is not None
    assert ledger.forget("a", 1, NOW)  # the files go with the row
    ledger.add_pending([NewBuild("a", 1, "FAILURE", "{}", NOW)], now=NOW)
    again = ledger.entry("a", 1)
    assert again is not None and again.files_summary is None
    assert ledger.files_data(again.id) is None
