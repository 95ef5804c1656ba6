"""Delivery over real loopback servers (Jenkins simulator + webhook receiver), real SQLite ledger."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from harvester.cli.main import main
from harvester.config import settings_from_mapping
from harvester.demo import PIPELINE, Receiver, Reply, SimBuild, SimStage, Simulator
from harvester.sei.webhook import parse_retry_after
from harvester.util.timeparse import to_epoch_ms
from tests.helpers import harvester_for, loopback_config, loopback_dict, write_config


@pytest.fixture
def sim() -> Simulator:
    with Simulator() as simulator:
        now = to_epoch_ms(datetime.now(tz=UTC))
        pipe = simulator.add("team/pipe", PIPELINE)
        pipe.builds = [
            SimBuild(n, now - (100 - n) * 60_000, stages=[SimStage("Build")]) for n in range(1, 5)
        ]
        simulator.add("team/free").builds = [
            SimBuild(n, now - (90 - n) * 60_000) for n in range(1, 5)
        ]
        yield simulator


def settings_for(sim: Simulator, receiver: Receiver, tmp_path: Path, **sections: Any):
    data = loopback_dict(sim, receiver, tmp_path, **sections)
    data["sei"].setdefault("timeout_seconds", 0.5)
    return settings_from_mapping(data)


def test_flaky_receiver_then_recovery_delivers_each_build_once(sim, receiver, tmp_path) -> None:
    # Every kind of transient answer, each followed by a success (no outage): each build that
    # fails is retried in the cycle and delivered once.
    receiver.then(
        Reply(503, "down"),
        Reply(202),
        Reply(429, "slow down", headers={"Retry-After": "1"}),
        Reply(202),
        Reply(503, "slow", delay_seconds=1.0),  # longer than sei.timeout_seconds: a timeout
        Reply(202),
        Reply(reset=True),
        Reply(202),
        Reply(502, "bad gateway"),
        Reply(202),
        Reply(408, "request timeout"),
        Reply(202),
        Reply(503, "still down"),
    )
    harvester, clock = harvester_for(sim, receiver, tmp_path, sei={"max_concurrency": 1})
    first = harvester.run_cycle()
    assert first.collect.builds_collected == 8
    for _ in range(5):  # whatever did not get through in its in-cycle retries waits for a later one
        if harvester.ledger.pending_count() == 0:
            break
        clock.now += timedelta(minutes=20)
        harvester.run_cycle()
    assert harvester.ledger.stats().counts == {"pending": 0, "sent": 8, "dead": 0, "skipped": 0}
    keys = receiver.accepted_keys()
    assert sorted(keys) == sorted({*keys})  # no build accepted twice
    assert len(keys) == 8
    entries = harvester.ledger.entries()
    history = [h for e in entries for h in harvester.ledger.history(e.id)]
    assert len(history) == 8 + 7  # every POST is on record, the 429 too
    assert Counter(h.outcome for h in history) == {"sent": 8, "retry": 6, "throttled": 1}
    # The 429 never counts; the first 503 came before the receiver had accepted anything (it
    # might have been an outage's start), so it does not count either.
    assert sum(e.attempts for e in entries) == 8 + 5
    headers = receiver.received[0].headers
    assert headers["authorization"] == "Bearer sei-secret-token"
    assert headers["content-type"] == "application/json"
    harvester.ledger.close()


def test_rejected_payload_is_dead_with_the_message(sim, receiver, tmp_path) -> None:
    receiver.then(Reply(400, '{"error":"field instance_guid unknown"}'))
    harvester, _ = harvester_for(sim, receiver, tmp_path, sei={"max_concurrency": 1})
    result = harvester.run_cycle()
    assert result.delivery.dead == 1
    assert result.exit_code == 1
    (dead,) = harvester.ledger.entries(status="dead")
    assert dead.last_http_status == 400
    assert "field instance_guid unknown" in (dead.last_error or "")
    assert dead.attempts == 1  # not retried
    harvester.ledger.close()


def test_max_attempts_then_dead_while_others_are_accepted(sim, receiver, tmp_path) -> None:
    receiver.per_build[("team/pipe", 2)] = Reply(500, "this one breaks the receiver")
    harvester, clock = harvester_for(
        sim, receiver, tmp_path, sei={"max_attempts": 2, "max_concurrency": 4}
    )
    for _ in range(4):
        harvester.run_cycle()
        clock.now += timedelta(hours=1)
    counts = harvester.ledger.stats().counts
    assert counts == {"pending": 0, "sent": 7, "dead": 1, "skipped": 0}
    (dead,) = harvester.ledger.entries(status="dead")
    assert (dead.job, dead.number, dead.attempts) == ("team/pipe", 2, 2)
    assert "gave up after 2 attempts" in (dead.last_error or "")
    harvester.ledger.close()


def test_credentials_rejected_keeps_rows_pending_and_exits_4(
    sim, receiver, tmp_path, capsys
) -> None:
    config = loopback_config(sim, receiver, tmp_path, sei={"token": "wrong-token"})
    assert main(["--config", str(config), "run", "--once"]) == 4
    err = capsys.readouterr().err
    assert "rejected the credentials" in err
    assert "wrong-token" not in err
    assert len(receiver.received) <= 4  # stopped: at most the sei.max_concurrency in flight
    assert main(["--config", str(config), "ledger", "stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["counts"] == {"pending": 8, "sent": 0, "dead": 0, "skipped": 0}
    config.write_text(config.read_text().replace("wrong-token", "sei-secret-token"))
    assert main(["--config", str(config), "run", "--once"]) == 0
    assert len(receiver.accepted_keys()) == 8


def test_run_once_exit_codes(sim, receiver, tmp_path) -> None:
    config = loopback_config(sim, receiver, tmp_path)
    assert main(["--config", str(config), "run", "--once"]) == 0
    assert Counter(receiver.accepted_keys()) == Counter(
        {(j, n): 1 for j in ("team/pipe", "team/free") for n in range(1, 5)}
    )
    sim.fail("/job/team/job/free/", 500)
    sim.job("team/free").builds.append(SimBuild(5, to_epoch_ms(datetime.now(tz=UTC))))
    assert main(["--config", str(config), "run", "--once"]) == 1  # a job could not be collected
    sim.heal()
    sim.fail("/job/team/job/free/", 403)
    assert main(["--config", str(config), "run", "--once"]) == 1  # one job forbidden: still 1
    bad = write_config(
        tmp_path / "bad.yaml",
        jenkins_url="http://127.0.0.1:9/",
        sei_url=receiver.url,
        ledger_url=f"sqlite:///{tmp_path / 'l.db'}",
    )
    assert main(["--config", str(bad), "run", "--once"]) == 3


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"[" * 100_000 + b"]" * 100_000, {}),  # json.loads: RecursionError
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + b"\xff" * 20, {"Content-Encoding": "gzip"}),
    ],
    ids=["nested", "broken-gzip"],
)
def test_a_malformed_discovery_answer_still_delivers_what_is_pending(
    sim, receiver, tmp_path, capsys, body, headers
) -> None:
    harvester, _ = harvester_for(sim, receiver, tmp_path)
    harvester.collector().collect(datetime.now(tz=UTC) - timedelta(days=7))  # 8 pending rows
    assert receiver.accepted_keys() == []
    sim.fail("/api/json", 200, body, headers)  # the discovery request only
    config = loopback_config(sim, receiver, tmp_path)
    capsys.readouterr()  # what the collection above logged (to another test's stream, maybe)
    assert main(["--config", str(config), "run", "--once"]) == 3  # Jenkins could not be listed
    assert len(receiver.accepted_keys()) == 8  # ...and what was pending went out all the same
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "cannot list Jenkins' jobs" in err


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("2", 2.0), ("0", 0.0), ("9999", 3600.0), ("99999", 3600.0), ("soon", None), (None, None)],
)
def test_retry_after_parsing(value, seconds) -> None:
    assert parse_retry_after(value) == seconds


def test_retry_after_http_date() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0


def test_tokens_never_reach_logs_ledger_or_messages(sim, receiver, tmp_path, capsys) -> None:
    receiver.then(Reply(500, "oops"), Reply(400, "bad"))
    sim.fail("/job/team/job/free/", 500)
    config = loopback_config(sim, receiver, tmp_path, sei={"max_concurrency": 1})
    assert main(["--config", str(config), "--log-level", "DEBUG", "run", "--once"]) == 1
    assert main(["--config", str(config), "ledger", "list", "--json"]) == 0
    assert main(["--config", str(config), "ledger", "show", "team/pipe", "1", "--json"]) == 0
    assert main(["--config", str(config), "check"]) == 0
    out, err = capsys.readouterr()
    assert "sei-secret-token" not in out + err
    assert sim.api_token not in out + err
    assert "dead" in out  # the run did fail and log things worth checking
    # every file of the ledger: with WAL, recent writes live in l.db-wal
    ledger_bytes = b"".join(path.read_bytes() for path in tmp_path.glob("l.db*"))
    assert b"team/pipe" in ledger_bytes  # the files do hold the data
    assert b"sei-secret-token" not in ledger_bytes
    assert sim.api_token.encode() not in ledger_bytes
