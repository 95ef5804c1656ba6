"""Delivery against a receiver that behaves like Harness SEI (answer table, §7):
pacing, 429 without Retry-After, outages, claims, a wrong URL, the send-time envelope, the first
cycle, and `check`. Real loopback servers, real SQLite ledgers."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from harvester.cli.main import main
from harvester.daemon.status import Health
from harvester.demo import Receiver, Reply, SimBuild, Simulator
from harvester.ledger import Ledger
from tests.helpers import GUID, harvester_for, loopback_config, loopback_dict, now_ms


@pytest.fixture
def sim() -> Simulator:
    with Simulator() as simulator:
        yield simulator


def add_builds(sim: Simulator, count: int, job: str = "team/app", **build: Any) -> None:
    start = now_ms() - count * 1000
    sim.add(job).builds = [SimBuild(n, start + n * 1000, **build) for n in range(1, count + 1)]


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# -- pacing and 429 ------------------------------------------------------------------------------


def test_pacing_keeps_under_the_receivers_limit(sim, tmp_path) -> None:
    add_builds(sim, 13)
    with Receiver(token="sei-secret-token", limit=(8, 1.0)) as receiver:
        harvester, _ = harvester_for(
            sim, receiver, tmp_path, sei={"max_concurrency": 1, "max_requests_per_minute": 360}
        )
        started = time.monotonic()
        result = harvester.run_cycle()
        took = time.monotonic() - started
        harvester.ledger.close()
    assert result.delivery.delivered == 13
    assert receiver.throttled() == 0  # 6 per second never meets a limit of 8 per second
    assert took >= 12 / 6 * 0.9  # paced: 13 POSTs at 6 per second cannot take less than ~2 s


def test_429_without_retry_after_pauses_and_finishes_with_nothing_dead(
    sim, tmp_path, capsys
) -> None:
    add_builds(sim, 60)
    with Receiver(token="sei-secret-token", instances={GUID}, limit=(20, 1.0)) as receiver:
        config = loopback_config(
            sim,
            receiver,
            tmp_path,
            sei={"max_requests_per_minute": 6000, "max_attempts": 1, "max_concurrency": 4},
        )
        code, _, err = run(capsys, "--config", str(config), "catch-up", "--since", "1d")
    assert code == 0, err
    assert receiver.throttled() > 0  # the limit was met: this test tests something
    keys = Counter(receiver.accepted_keys())
    assert set(keys) == {("team/app", n) for n in range(1, 61)}
    assert set(keys.values()) == {1}
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.db'}")
    assert ledger.stats().counts == {"pending": 0, "sent": 60, "dead": 0, "skipped": 0}
    assert all(e.attempts == 1 for e in ledger.entries())  # 429s never count
    ledger.close()


def test_retry_after_is_honoured_and_never_counts(sim, receiver, tmp_path) -> None:
    add_builds(sim, 3)
    receiver.then(Reply(429, headers={"Retry-After": "1"}))
    harvester, _ = harvester_for(sim, receiver, tmp_path, sei={"max_attempts": 1})
    started = time.monotonic()
    result = harvester.run_cycle()
    assert time.monotonic() - started >= 0.9  # every worker waited out the Retry-After
    assert result.delivery.delivered == 3
    assert result.delivery.throttled == 1
    assert harvester.ledger.stats().counts["dead"] == 0
    text = harvester.metrics.exposition().decode()
    assert 'harvester_delivery_pauses_total{reason="throttled"} 1.0' in text
    assert 'harvester_deliveries_total{outcome="throttled"} 1.0' in text
    harvester.ledger.close()


# -- outages -------------------------------------------------------------------------------------


def test_an_outage_longer_than_max_attempts_cycles_makes_nothing_dead(sim, receiver, tmp_path):
    add_builds(sim, 8)
    receiver.default = Reply(503, "maintenance")
    harvester, clock = harvester_for(
        sim, receiver, tmp_path, sei={"max_attempts": 2, "max_concurrency": 2}
    )
    health = Health(interval_seconds=60)
    deadline = time.monotonic() + 4
    cycles = 0
    while time.monotonic() < deadline:  # many more cycles than max_attempts, over 4 s
        result = harvester.run_cycle()
        health.record(result.finished_at, result.problem)
        cycles += 1
        clock.now += timedelta(hours=1)
        time.sleep(0.1)
    assert cycles > 4
    assert harvester.ledger.stats().counts == {"pending": 8, "sent": 0, "dead": 0, "skipped": 0}
    assert all(e.attempts == 0 for e in harvester.ledger.entries())  # the outage spent none
    assert (
        'harvester_delivery_pauses_total{reason="outage"}'
        in harvester.metrics.exposition().decode()
    )
    healthy, detail = health()
    assert not healthy
    assert "webhook" in str(detail["reason"])
    # Paused and probing, not hammering: a few POSTs at the onset, then one probe at a time.
    assert len(receiver.received) < 12
    receiver.default = Reply(202)
    deadline = time.monotonic() + 10
    while harvester.ledger.pending_count() and time.monotonic() < deadline:
        result = harvester.run_cycle()
        health.record(result.finished_at, result.problem)
        time.sleep(0.2)
    assert harvester.ledger.stats().counts == {"pending": 0, "sent": 8, "dead": 0, "skipped": 0}
    assert sorted(Counter(receiver.accepted_keys()).values()) == [1] * 8
    assert health()[0]
    harvester.ledger.close()


# -- claims --------------------------------------------------------------------------------------


def test_two_deliverers_on_one_ledger_with_a_throttling_receiver_send_each_build_once(
    sim, receiver, tmp_path
) -> None:
    add_builds(sim, 40)
    receiver.then(*[Reply(429, headers={"Retry-After": "1"})] * 3, Reply(503), Reply(503))
    one, _ = harvester_for(sim, receiver, tmp_path, sei={"max_concurrency": 3})
    two, _ = harvester_for(sim, receiver, tmp_path, sei={"max_concurrency": 3})
    one.collector().collect(datetime.now(tz=UTC) - timedelta(days=1))
    threads = [threading.Thread(target=h.deliverer().deliver_due) for h in (one, two, one, two)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    while one.ledger.pending_count():  # what waits for its backoff: due now
        one.ledger.make_due(None, datetime.now(tz=UTC) + timedelta(hours=1))
        one.clock.now += timedelta(hours=1)  # type: ignore[attr-defined]
        one.deliverer().deliver_due()
    keys = Counter(receiver.accepted_keys())
    assert len(keys) == 40
    assert set(keys.values()) == {1}  # nothing POSTed twice with success
    one.ledger.close()
    two.ledger.close()


# -- a wrong sei.url -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [Reply(404, "no route"), Reply(405, "method"), Reply(301, headers={"Location": "/elsewhere"})],
    ids=["404", "405", "redirect"],
)
def test_a_wrong_url_keeps_rows_pending_and_exits_4(sim, receiver, tmp_path, capsys, reply):
    add_builds(sim, 6)
    receiver.default = reply
    config = loopback_config(sim, receiver, tmp_path, sei={"max_concurrency": 2})
    code, _, err = run(capsys, "--config", str(config), "run", "--once")
    assert code == 4
    assert "sei.url" in err
    assert len(receiver.received) <= 2  # stopped at once: the POSTs in flight only
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.db'}")
    assert ledger.stats().counts == {"pending": 6, "sent": 0, "dead": 0, "skipped": 0}
    assert all(e.attempts == 0 for e in ledger.entries())
    ledger.close()


def test_a_wrong_path_is_a_wrong_url(sim, receiver, tmp_path, capsys) -> None:
    add_builds(sim, 2)
    config = tmp_path / "c.yaml"
    data = loopback_dict(sim, receiver, tmp_path)
    data["sei"]["url"] = receiver.url.replace("/v1/custom-cicd", "/v1/custom")
    config.write_text(yaml.safe_dump(data))
    code, _, err = run(capsys, "--config", str(config), "run", "--once")
    assert code == 4
    assert "sei.url" in err


# -- the send-time envelope ----------------------------------------------------------------------


def test_a_config_change_between_collection_and_delivery_reaches_the_collected_builds(
    sim, receiver, tmp_path, capsys
) -> None:
    params = [{"_class": "hudson.model.StringParameterValue", "name": "DEPLOY_KEY", "value": "s3"}]
    add_builds(sim, 3, parameters=params)
    config = loopback_config(sim, receiver, tmp_path, sei={"token": "wrong"})
    assert run(capsys, "--config", str(config), "run", "--once")[0] == 4  # collected, not sent
    other_guid = "0b8a6a2e-55f1-4a76-8c3e-5b0d7c9e1f20"
    receiver.instances = {other_guid}
    data = loopback_dict(
        sim,
        receiver,
        tmp_path,
        sei={"instance_guid": other_guid, "instance_name": "Renamed"},
        mapping={"redact_parameters": ["*KEY*"]},
    )
    config.write_text(yaml.safe_dump(data))
    assert run(capsys, "--config", str(config), "run", "--once")[0] == 0
    bodies = receiver.accepted()
    assert len(bodies) == 3
    for body in bodies:
        assert (body["instance_guid"], body["instance_name"]) == (other_guid, "Renamed")
        assert body["job_run_params"] == [
            {"type": "StringParameterValue", "name": "DEPLOY_KEY", "value": "********"}
        ]
    code, out, _ = run(capsys, "--config", str(config), "ledger", "show", "team/app", "1", "--json")
    assert code == 0
    assert json.loads(out)["payload"] == next(b for b in bodies if b["build_number"] == 1)


# -- the first cycle and `ledger retry --pending` --------------------------------------------------


def test_the_first_cycle_of_a_process_tries_every_pending_row(sim, receiver, tmp_path, capsys):
    add_builds(sim, 4)
    receiver.per_build[("team/app", 2)] = Reply(503)
    config = loopback_config(sim, receiver, tmp_path)
    assert run(capsys, "--config", str(config), "run", "--once")[0] == 1
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.db'}")
    (left,) = ledger.entries(status="pending")
    assert left.next_attempt_at > datetime.now(tz=UTC)  # in backoff
    del receiver.per_build[("team/app", 2)]
    assert run(capsys, "--config", str(config), "run", "--once")[0] == 0  # a new process
    assert ledger.stats().counts["pending"] == 0
    ledger.close()


def test_ledger_retry_pending_makes_rows_due_now(sim, receiver, tmp_path, capsys) -> None:
    add_builds(sim, 3)
    receiver.per_build[("team/app", 3)] = Reply(503)
    config = loopback_config(sim, receiver, tmp_path)
    assert run(capsys, "--config", str(config), "run", "--once")[0] == 1
    code, out, _ = run(capsys, "--config", str(config), "ledger", "retry", "--pending")
    assert code == 0
    assert "1 pending build(s) due now" in out
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.db'}")
    (left,) = ledger.entries(status="pending")
    assert left.next_attempt_at <= datetime.now(tz=UTC)
    assert run(capsys, "--config", str(config), "ledger", "retry", "team/app", "3")[0] == 0
    ledger.close()


# -- check ---------------------------------------------------------------------------------------


def check(capsys, config: Path) -> tuple[int, str]:
    code, out, _ = run(capsys, "--config", str(config), "check")
    return code, out


def test_check_tells_every_webhook_case_apart(sim, receiver, tmp_path, capsys) -> None:
    add_builds(sim, 1)

    def config_with(name: str, **sei: Any) -> Path:
        path = tmp_path / name
        data = loopback_dict(sim, receiver, tmp_path)
        data["sei"].update(sei)
        path.write_text(yaml.safe_dump(data))
        return path

    code, out = check(capsys, config_with("good.yaml"))
    assert code == 0, out
    assert "ok   webhook" in out and "HTTP 400" in out and "ok   instance" in out

    code, out = check(capsys, config_with("token.yaml", token="wrong"))
    assert code == 4
    assert "FAIL webhook" in out and "sei.token" in out and "sei.auth_scheme" in out

    code, out = check(capsys, config_with("path.yaml", url=receiver.url + "/extra"))
    assert code == 4
    assert "FAIL webhook" in out and "sei.url" in out

    unknown = "9d9c1c1e-1111-4a2b-9c3d-000000000001"
    code, out = check(capsys, config_with("guid.yaml", instance_guid=unknown))
    assert code == 4
    assert "FAIL instance" in out and "sei.instance_guid" in out

    code, out = check(
        capsys, config_with("zero.yaml", instance_guid="00000000-0000-0000-0000-000000000000")
    )
    assert code == 4
    assert "placeholder" in out

    code, out = check(capsys, config_with("placeholder.yaml", token="change-me"))
    assert code == 4
    assert "placeholder" in out

    assert receiver.accepted() == []  # nothing was ever stored at the receiver
    assert all(r.body == {} for r in receiver.received)


def test_check_warns_when_the_receiver_accepts_an_empty_body(sim, tmp_path, capsys) -> None:
    add_builds(sim, 1)
    with Receiver(token="sei-secret-token") as lax:
        lax.validate = False
        code, out = check(capsys, loopback_config(sim, lax, tmp_path))
    assert code == 0
    assert "WARN webhook" in out and "accepted an empty body" in out


def test_check_proves_the_ledger_can_be_written(sim, receiver, tmp_path, capsys) -> None:
    add_builds(sim, 1)
    config = tmp_path / "c.yaml"
    data = loopback_dict(sim, receiver, tmp_path)
    data["ledger"]["url"] = f"sqlite:///{tmp_path / 'no-such-dir' / 'l.db'}"
    config.write_text(yaml.safe_dump(data))
    code, out = check(capsys, config)
    assert code == 1
    assert "FAIL ledger" in out and "ledger.url" in out
