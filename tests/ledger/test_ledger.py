from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from harvester.attempt import Attempt
from harvester.errors import LedgerError, LedgerUnavailable, NotActive
from harvester.ledger import Base, Fence, Ledger, NewBuild

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def build(job: str, number: int, minutes_ago: int = 0) -> NewBuild:
    return NewBuild(
        job, number, "SUCCESS", f'{{"build_number":{number}}}', NOW - timedelta(minutes=minutes_ago)
    )


def test_upgrade_downgrade_upgrade_and_no_drift(ledger: Ledger, ledger_url: str) -> None:
    ledger.downgrade("base")
    engine = sqlalchemy.create_engine(ledger_url)
    with engine.connect() as connection:
        assert set(sqlalchemy.inspect(connection).get_table_names()) <= {"alembic_version"}
    ledger.upgrade()
    with engine.connect() as connection:
        tables = set(sqlalchemy.inspect(connection).get_table_names())
        assert {"builds", "delivery_attempts", "job_cursors", "cycles"} <= tables
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    engine.dispose()


def test_pending_then_sent_with_history(ledger: Ledger) -> None:
    assert ledger.add_pending([build("a", 1), build("a", 2)], now=NOW, cursor=("a", 2)) == 2
    assert ledger.add_pending([build("a", 2)], now=NOW) == 0  # already held: ignored, not doubled
    assert ledger.cursors() == {"a": 2}
    due = ledger.claim_due(NOW, 10, "test")
    assert [e.number for e in due] == [1, 2]
    assert ledger.claim_due(NOW, 10, "test") == []  # leased: not handed out twice
    status = ledger.record_attempt(
        due[0].id, Attempt("sent", 200, None, 12), now=NOW, max_attempts=3, owner="test"
    )
    assert status == "sent"
    entry = ledger.entry("a", 1)
    assert entry is not None
    assert (entry.status, entry.attempts, entry.sent_at) == ("sent", 1, NOW)
    assert [h.outcome for h in ledger.history(entry.id)] == ["sent"]


def test_times_with_microseconds_are_due_at_that_moment(ledger: Ledger) -> None:
    # SQLite compares times as text: a row collected at a moment with microseconds must be due
    # at that moment, and its times read back as written.
    now = NOW.replace(microsecond=123_456)
    ledger.add_pending([build("a", 1)], now=now)
    ledger.add_pending([build("a", 2)], now=now, hold=[("a", 3, "still running")])
    due = ledger.claim_due(now, 10, "w")
    assert [e.number for e in due] == [1, 2]
    assert [e.next_attempt_at for e in due] == [now, now]
    for entry in due:
        ledger.record_attempt(
            entry.id, Attempt("sent", 202, None, 5), now=now, max_attempts=3, owner="w"
        )
    for number in (1, 2):
        entry = ledger.entry("a", number)
        assert entry is not None and entry.sent_at == now
        assert [h.attempted_at for h in ledger.history(entry.id)] == [now]


def test_a_page_with_a_reused_number_keeps_each_build_s_own_payload(ledger: Ledger) -> None:
    # Through SQLAlchemy (a page with holds; every page on PostgreSQL), the payloads of new rows
    # are matched to them by job and number: a re-created job's reused number, recorded skipped
    # beside the old build in the same page, must not take the other's payload.
    old = build("a", 1, minutes_ago=60)
    reused = NewBuild("a", 1, None, "{}", NOW, skipped="number reused")
    assert (
        ledger.add_pending([old, reused, build("a", 2)], now=NOW, hold=[("a", 3, "still running")])
        == 2
    )
    rows = sorted(ledger.entries(), key=lambda e: (e.number, e.started_at))
    assert [(e.number, e.status, e.payload) for e in rows] == [
        (1, "pending", '{"build_number":1}'),
        (1, "skipped", "{}"),
        (2, "pending", '{"build_number":2}'),
    ]


def test_only_the_claim_holder_records(ledger: Ledger) -> None:
    # ARCHITECTURE "The ledger's tables": an outcome is recorded only by the worker that still holds the row.
    ledger.add_pending([build("a", n) for n in (1, 2, 3)], now=NOW)
    one, two, three = ledger.claim_due(NOW, 10, "holder")
    sent, retry = Attempt("sent", 202, None, 5), Attempt("retry", 503, "HTTP 503", 5)

    def record(entry_id: int, attempt: Attempt, owner: str) -> str:
        return ledger.record_attempt(entry_id, attempt, now=NOW, max_attempts=3, owner=owner)

    assert record(one.id, sent, "someone-else") == "lost"
    assert record(two.id, retry, "someone-else") == "lost"
    untouched = ledger.entry("a", 1)
    assert untouched is not None
    assert (untouched.status, untouched.attempts, ledger.history(untouched.id)) == (
        "pending",
        0,
        [],
    )
    assert [record(one.id, sent, "holder"), record(two.id, retry, "holder")] == ["sent", "pending"]
    assert record(three.id, sent, "someone-else") == "lost"
    assert [ledger.entry("a", n).status for n in (1, 2, 3)] == ["sent", "pending", "pending"]  # type: ignore[union-attr]
    assert [len(ledger.history(e.id)) for e in (one, two, three)] == [1, 1, 0]


def test_retries_then_dead_after_max_attempts(ledger: Ledger) -> None:
    ledger.add_pending([build("a", 1)], now=NOW)
    entry_id = ledger.claim_due(NOW, 1, "test")[0].id
    later = NOW + timedelta(minutes=1)
    retry = Attempt("retry", 503, "HTTP 503", 5, next_attempt_at=later)
    assert (
        ledger.record_attempt(entry_id, retry, now=NOW, max_attempts=2, owner="test") == "pending"
    )
    assert ledger.claim_due(NOW, 1, "test") == []  # not due before its next attempt time
    assert [e.id for e in ledger.claim_due(later, 1, "test")] == [entry_id]
    assert ledger.record_attempt(entry_id, retry, now=later, max_attempts=2, owner="test") == "dead"
    entry = ledger.entry("a", 1)
    assert entry is not None
    assert entry.status == "dead"
    assert entry.last_error is not None
    assert "gave up after 2 attempts" in entry.last_error
    assert ledger.retry([entry_id], later) == 1
    entry = ledger.entry("a", 1)
    assert entry is not None
    assert (entry.status, entry.attempts) == ("pending", 0)


def test_rejected_is_dead_at_once_and_credentials_do_not_count(ledger: Ledger) -> None:
    ledger.add_pending([build("a", 1), build("a", 2)], now=NOW)
    first, second = ledger.claim_due(NOW, 2, "test")
    creds = Attempt("credentials", 401, "HTTP 401", 3)
    assert (
        ledger.record_attempt(first.id, creds, now=NOW, max_attempts=1, owner="test") == "pending"
    )
    entry = ledger.entry("a", 1)
    assert entry is not None
    assert entry.attempts == 0
    rejected = Attempt("dead", 400, "HTTP 400: bad field", 3)
    assert (
        ledger.record_attempt(second.id, rejected, now=NOW, max_attempts=10, owner="test") == "dead"
    )


def test_cursor_never_moves_backwards_except_forget(ledger: Ledger) -> None:
    ledger.add_pending([build("a", 5)], now=NOW, cursor=("a", 5))
    ledger.add_pending([], now=NOW, cursor=("a", 3))
    assert ledger.cursors() == {"a": 5}
    assert ledger.forget("a", 5, NOW)
    assert ledger.cursors() == {"a": 4}
    assert ledger.entry("a", 5) is None
    assert not ledger.forget("a", 5, NOW)


def test_entries_filters_and_order(ledger: Ledger) -> None:
    ledger.add_pending(
        [build("team/app", 1, 30), build("team/app", 2, 20), build("other", 7, 10)], now=NOW
    )
    assert [(e.job, e.number) for e in ledger.entries()] == [
        ("other", 7),
        ("team/app", 2),
        ("team/app", 1),
    ]
    assert [e.number for e in ledger.entries(job_glob="team/*")] == [2, 1]
    assert [e.number for e in ledger.entries(job_glob="*")] == [7]  # '*' stops at '/'
    assert [e.number for e in ledger.entries(limit=1)] == [7]
    assert ledger.entries(status="sent") == []
    stats = ledger.stats()
    assert stats.counts == {"pending": 3, "sent": 0, "dead": 0, "skipped": 0}
    assert stats.oldest_pending_started_at == NOW - timedelta(minutes=30)


def test_concurrent_writers_do_not_fail_with_database_is_locked(ledger: Ledger) -> None:
    ledger.add_pending([build("j", n) for n in range(1, 201)], now=NOW)
    due = ledger.claim_due(NOW, 200, "test")
    errors: list[BaseException] = []

    def work(chunk: list[int]) -> None:
        try:
            for entry_id in chunk:
                ledger.record_attempt(
                    entry_id, Attempt("sent", 200, None, 1), now=NOW, max_attempts=3, owner="test"
                )
                ledger.add_pending([build("k", entry_id)], now=NOW, cursor=("k", entry_id))
        except BaseException as exc:
            errors.append(exc)

    ids = [e.id for e in due]
    threads = [threading.Thread(target=work, args=(ids[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert ledger.stats().counts["sent"] == 200
    assert ledger.cursors()["k"] == max(ids)


def test_two_replicas_never_claim_the_same_row(ledger_url: str) -> None:
    one, two = Ledger.open(ledger_url, controller="ci"), Ledger.open(ledger_url, controller="ci")
    one.add_pending([build("j", n) for n in range(1, 101)], now=NOW)
    claimed: list[int] = []
    lock = threading.Lock()

    def claim(ledger: Ledger) -> None:
        while batch := ledger.claim_due(NOW, 7, "test"):
            with lock:
                claimed.extend(e.id for e in batch)

    threads = [threading.Thread(target=claim, args=(ledger,)) for ledger in (one, two, one, two)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(set(claimed))
    assert len(claimed) == 100
    one.close()
    two.close()


def test_claims_of_replicas_that_stopped_heartbeating_are_released(ledger: Ledger) -> None:
    ledger.add_pending([build("j", n) for n in range(1, 6)], now=NOW)
    ledger.register("live", "daemon", 60)
    ledger.register("dead", "daemon", 0.01)  # dead after 3 x 0.01 s without a heartbeat
    ledger.claim_due(NOW, 2, "dead/a")
    ledger.claim_due(NOW, 1, "live/a")
    ledger.claim_due(NOW, 1, "host:123:abc")  # an owner from before the registry
    time.sleep(0.2)
    assert [r.alive for r in ledger.replicas()] == [True, False]
    assert ledger.claim_due(NOW, 10, "live/b")[0].number == 5  # the others are still claimed
    assert ledger.release_dead_claims() == 3
    assert sorted(e.number for e in ledger.claim_due(NOW, 10, "live/b")) == [1, 2, 4]
    assert [r.id for r in ledger.replicas()] == ["live"]  # the dead one left the registry
    ledger.heartbeat("dead", "daemon", 60)  # it was only partitioned: back again
    assert sorted(r.id for r in ledger.replicas() if r.alive) == ["dead", "live"]


def test_a_new_active_replica_takes_the_claims_of_other_daemons_not_of_one_off_runs(
    ledger: Ledger,
) -> None:
    ledger.add_pending([build("j", n) for n in range(1, 4)], now=NOW)
    for replica, kind in (("old", "daemon"), ("new", "daemon"), ("catch", "catch-up")):
        ledger.register(replica, kind, 60)
    ledger.claim_due(NOW, 1, "old/a")
    ledger.claim_due(NOW, 1, "catch/a")
    assert ledger.release_dead_claims() == 0  # every owner is alive
    assert ledger.release_dead_claims(active="new") == 1  # the former active one's, only
    assert [e.number for e in ledger.claim_due(NOW, 10, "new/a")] == [1, 3]  # not 2


def test_the_lease_has_one_holder_and_a_new_epoch_at_every_takeover(ledger: Ledger) -> None:
    ttl = timedelta(seconds=30)
    assert ledger.acquire_lease("a", ttl) == 1
    assert ledger.acquire_lease("b", ttl) is None  # a's runs
    assert ledger.renew_lease("a", 1, ttl)
    assert not ledger.renew_lease("b", 1, ttl) and not ledger.renew_lease("a", 2, ttl)
    assert ledger.lease_holder() == ("a", 1)
    ledger.release_lease("a", 1)  # a clean stop: b need not wait for the expiry
    assert ledger.lease_holder() == (None, 1)
    assert not ledger.renew_lease("a", 1, ttl)  # expired: taken again only at a new epoch
    assert ledger.acquire_lease("b", ttl) == 2
    assert ledger.acquire_lease("a", timedelta(seconds=0.05)) is None
    assert ledger.renew_lease("b", 2, timedelta(seconds=0.05))
    time.sleep(0.2)
    assert ledger.acquire_lease("a", ttl) == 3  # b's lease ran out


def test_writes_under_a_fence_are_refused_once_another_replica_holds_the_lease(
    ledger_url: str,
) -> None:
    ttl = timedelta(seconds=30)
    old, new, catch_up = (Ledger.open(ledger_url, controller="ci") for _ in range(3))
    epoch = old.acquire_lease("old", ttl)
    assert epoch is not None
    old.fence = Fence("old", epoch)
    old.add_pending([build("j", 1), build("j", 2)], now=NOW, cursor=("j", 2))
    claimed = old.claim_due(NOW, 1, "old/a")
    old.release_lease("old", epoch)
    assert new.acquire_lease("new", ttl) == epoch + 1
    # Woken from SIGSTOP: nothing it writes that matters goes through any more.
    with pytest.raises(NotActive):
        old.add_pending([build("j", 3)], now=NOW, cursor=("j", 3))
    with pytest.raises(NotActive):
        old.claim_due(NOW, 1, "old/a")
    with pytest.raises(NotActive):
        old.record_attempt(
            claimed[0].id, Attempt("sent", 202, None, 1), now=NOW, max_attempts=3, owner="old/a"
        )
    with pytest.raises(NotActive):
        old.restart_job("j")
    assert new.cursors() == {"j": 2} and new.entry("j", 3) is None
    # A standby (epoch 0) is refused too; a one-off run (no fence) is not.
    new.fence = Fence("standby", 0)
    with pytest.raises(NotActive):
        new.claim_due(NOW, 1, "x/a")
    assert [e.number for e in catch_up.claim_due(NOW, 10, "catch/a")] == [2]
    for ledger in (old, new, catch_up):
        ledger.close()


def test_controllers_never_see_each_other_s_rows(ledger_url: str) -> None:
    one = Ledger.open(ledger_url, controller="jenkins-a")
    two = Ledger.open(ledger_url, controller="jenkins-b")
    # The same job names, numbers and even start times on both (a restored backup, say).
    assert (
        one.add_pending(
            [build("deploy-prod", 1), build("folder/app", 2)],
            now=NOW,
            cursor=("deploy-prod", 1),
            hold=[("folder/app", 3, "still running")],
        )
        == 2
    )
    assert two.add_pending([build("deploy-prod", 1)], now=NOW, cursor=("deploy-prod", 7)) == 1
    assert one.cursors() == {"deploy-prod": 1} and two.cursors() == {"deploy-prod": 7}
    assert one.held() == {"folder/app": {3}} and two.held() == {}
    assert set(two.known("folder/app", 0)) == set()
    assert [e.job for e in two.claim_due(NOW, 10, "b/x")] == ["deploy-prod"]
    assert {e.controller for e in one.claim_due(NOW, 10, "a/x")} == {"jenkins-a"}
    two.restart_job("deploy-prod")
    assert one.cursors() == {"deploy-prod": 1}
    assert two.stats().counts["pending"] == 1 and one.stats().counts["pending"] == 2
    everyone = Ledger.open(ledger_url)  # the `ledger` commands: every controller's rows
    assert everyone.stats().by_controller == {
        "jenkins-a": {"pending": 2, "sent": 0, "dead": 0, "skipped": 0},
        "jenkins-b": {"pending": 1, "sent": 0, "dead": 0, "skipped": 0},
    }
    with pytest.raises(LedgerError, match="in the ledger of 2 controllers"):
        everyone.entry("deploy-prod", 1)
    assert everyone.controllers() == ["jenkins-a", "jenkins-b"]
    for ledger in (one, two, everyone):
        ledger.close()


def test_held_numbers_are_kept_until_released_and_restart_clears_them(ledger: Ledger) -> None:
    ledger.add_pending(
        [],
        now=NOW,
        hold=[("a", 3, "still running"), ("a", 5, "still running"), ("b", 1, "still running")],
        cursor=("a", 6),
    )
    ledger.add_pending([], now=NOW, hold=[("a", 3, "still running")])  # held twice: still once
    assert ledger.held() == {"a": {3, 5}, "b": {1}}
    ledger.add_pending([build("a", 3)], now=NOW, unhold=[("a", 3)])
    assert ledger.held() == {"a": {5}, "b": {1}}
    ledger.restart_job("a")  # re-created: its cursor and held numbers were the old job's
    assert ledger.held() == {"b": {1}}
    assert "a" not in ledger.cursors()


def test_skipped_rows_and_reused_numbers(ledger: Ledger) -> None:
    old = build("job", 1, minutes_ago=60)
    reused = NewBuild("job", 1, None, "{}", NOW, skipped="number reused")
    assert ledger.add_pending([old], now=NOW) == 1
    assert ledger.add_pending([reused], now=NOW) == 0  # recorded, but not pending
    assert ledger.add_pending([reused], now=NOW) == 0  # and only once
    known = ledger.known("job", 0)
    assert len(known[1]) == 2  # two start times under one number
    entry = ledger.entry("job", 1)
    assert entry is not None and entry.status == "skipped"  # the newest
    assert [e.number for e in ledger.entries(status="skipped")] == [1]
    assert ledger.stats().counts == {"pending": 1, "sent": 0, "dead": 0, "skipped": 1}
    assert ledger.claim_due(NOW, 10, "test")[0].status == "pending"  # skipped is never sent
    assert ledger.claim_due(NOW, 10, "test") == []


def test_forget_of_a_build_not_in_the_ledger_changes_nothing(ledger: Ledger) -> None:
    ledger.add_pending([build("a", 5)], now=NOW, cursor=("a", 9))
    assert not ledger.forget("a", 7, NOW)
    assert ledger.cursors() == {"a": 9}
    assert ledger.forget("a", 5, NOW)
    assert ledger.cursors() == {"a": 4}


def test_a_ledger_of_an_earlier_version_upgrades_in_place(ledger_url: str) -> None:
    engine = sqlalchemy.create_engine(ledger_url)
    old = Ledger.open(ledger_url, migrate=False)
    old.upgrade("0002")
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO builds (job, number, status, result, payload, attempts, next_attempt_at,"
            " started_at, collected_at, sent_at) VALUES ('a', 1, 'sent', 'SUCCESS', '{\"n\":1}', 1,"
            " '2026-11-28 12:00:00', '2026-11-28 11:00:00', '2026-11-28 12:00:00',"
            " '2026-11-28 12:00:01')"
        )
        connection.exec_driver_sql(
            "INSERT INTO delivery_attempts (build_id, attempted_at, outcome, http_status,"
            " duration_ms) VALUES (1, '2026-11-28 12:00:01', 'sent', 202, 5)"
        )
        connection.exec_driver_sql(
            "INSERT INTO job_cursors (job, last_number, updated_at)"
            " VALUES ('a', 1, '2026-11-28 12:00:00')"
        )
    old.close()
    ledger = Ledger.open(ledger_url, controller="jenkins.example.com")  # upgraded first
    assert ledger.adopt() == 1  # the first process with a controller takes the old rows
    assert Ledger.open(ledger_url, controller="other").adopt() == 0  # and only the first
    entry = ledger.entry("a", 1)
    assert entry is not None and (entry.status, entry.attempts) == ("sent", 1)
    assert entry.controller == "jenkins.example.com"
    assert entry.payload == '{"n":1}'  # moved to build_payloads by 0006
    assert len(ledger.history(entry.id)) == 1  # the delivery history survives the migrations
    assert ledger.cursors() == {"a": 1}
    assert ledger.claim_due(NOW + timedelta(days=9), 10, "x") == []  # nothing sent again
    ledger.close()
    engine.dispose()


def test_payloads_move_back_and_forth_with_migration_0006(ledger: Ledger, ledger_url: str) -> None:
    ledger.add_pending([build("a", 1), build("a", 2)], now=NOW)
    ledger.downgrade("0005")
    engine = sqlalchemy.create_engine(ledger_url)
    with engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT number, payload FROM builds ORDER BY number")
        assert stored.all() == [(1, '{"build_number":1}'), (2, '{"build_number":2}')]
    engine.dispose()
    ledger.upgrade()
    entry = ledger.entry("a", 2)
    assert entry is not None and entry.payload == '{"build_number":2}'
    assert ledger.forget("a", 2, NOW)  # the payload goes with its row (ON DELETE CASCADE)
    ledger.add_pending([build("a", 2)], now=NOW)
    assert [e.payload for e in ledger.claim_due(NOW, 10, "w")] == [
        '{"build_number":1}',
        '{"build_number":2}',
    ]


@pytest.mark.postgres
def test_a_database_that_went_away_is_an_error_not_a_crash(postgres_url: str) -> None:
    ledger = Ledger.open(postgres_url, controller="ci")
    ledger.add_pending([build("a", 1)], now=NOW)
    (claimed,) = ledger.claim_due(NOW, 1, "test")
    base, _, name = postgres_url.rpartition("/")
    admin = sqlalchemy.create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
    admin.dispose()
    with pytest.raises(LedgerUnavailable, match="the database cannot be used") as failure:
        ledger.stats()
    assert failure.value.exit_code == 1  # work left, not a usage error
    # Recording an outcome meets the same error.
    with pytest.raises(LedgerUnavailable, match="the database cannot be used"):
        ledger.record_attempt(
            claimed.id, Attempt("sent", 202, None, 1), now=NOW, max_attempts=3, owner="test"
        )
    ledger.close()


def test_the_claim_query_walks_its_index_and_never_sorts(ledger: Ledger, ledger_url: str) -> None:
    # A claim must cost the same whatever the backlog (scale): no sort of due rows.
    if not ledger_url.startswith("sqlite"):
        pytest.skip("the plan is SQLite's; PostgreSQL's planner picks by its statistics")
    engine = sqlalchemy.create_engine(ledger_url)
    with engine.connect() as connection:
        plan = connection.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT id FROM builds WHERE controller = 'ci' AND status = 'pending' AND "
            "next_attempt_at <= '2026-12-01' AND (claimed_until IS NULL OR claimed_until <= "
            "'2026-12-01') ORDER BY started_at, id LIMIT 32"
        ).all()
    engine.dispose()
    text = " ".join(str(step[-1]) for step in plan)
    assert "COVERING INDEX ix_builds_claim" in text and "TEMP B-TREE" not in text


def test_leases_are_on_the_database_clock(ledger: Ledger) -> None:
    # A replica whose clock runs an hour ahead must not take a row another one just claimed.
    ledger.add_pending([build("j", 1)], now=NOW)
    assert len(ledger.claim_due(NOW, 1, "a/1")) == 1
    skewed = datetime.now(tz=UTC) + timedelta(hours=1)
    assert ledger.claim_due(skewed, 1, "b/1") == []
