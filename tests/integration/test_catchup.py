"""catch-up over real loopback servers and a real SQLite ledger."""

from __future__ import annotations

import io
import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from harvester.cli.main import main
from harvester.cli.output import BarProgress
from harvester.collect.report import CollectReport
from harvester.delivery.deliverer import DeliveryReport
from harvester.demo import PIPELINE, Reply, SimBuild, SimStage, Simulator
from harvester.ledger import Ledger, NewBuild
from harvester.util.timeparse import iso_utc, to_epoch_ms
from tests.helpers import controller_of, loopback_config

NOW = datetime.now(tz=UTC).replace(microsecond=0)


def at(days_ago: float) -> int:
    return to_epoch_ms(NOW - timedelta(days=days_ago))


@pytest.fixture
def sim() -> Simulator:
    with Simulator() as simulator:
        old = simulator.add("team/old", PIPELINE)
        old.builds = [SimBuild(n, at(40 - n), stages=[SimStage("Build")]) for n in range(1, 31)]
        simulator.add("other/app").builds = [SimBuild(1, at(5)), SimBuild(2, at(1))]
        yield simulator


@pytest.fixture
def config(tmp_path, sim, receiver):
    return loopback_config(sim, receiver, tmp_path, harvest={"since": "1h"})


def test_window_edges_and_job_filter(config, receiver) -> None:
    since = iso_utc(NOW - timedelta(days=20))  # build 20 starts exactly here: included
    until = iso_utc(NOW - timedelta(days=15))  # build 25 starts exactly here: excluded
    assert (
        main(
            [
                "--config",
                str(config),
                "catch-up",
                "--since",
                since,
                "--until",
                until,
                "--job",
                "team/*",
            ]
        )
        == 0
    )
    assert sorted(n for _, n in receiver.accepted_keys()) == [20, 21, 22, 23, 24]


def test_dry_run_writes_and_sends_nothing(config, receiver, sim, capsys, tmp_path) -> None:
    # A row left claimed by a run that died mid-delivery: a real run would release it.
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.db'}", controller=controller_of(sim))
    ledger.add_pending([NewBuild("gone/job", 1, "SUCCESS", "{}", NOW - timedelta(days=1))], now=NOW)
    ledger.claim_due(NOW, 1, "a-replica-that-died/1")
    ledger.close()
    # 252h = 10.5 days: team/old #30 (10 days ago) and both other/app builds
    assert main(["--config", str(config), "catch-up", "--since", "252h", "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert "3 build(s) would be sent" in captured.err
    out = captured.out.strip().splitlines()
    sent = [json.loads(line) for line in out]
    assert {(p["job_full_name"], p["build_number"]) for p in sent} == {
        ("team/old", 30),
        ("other/app", 1),
        ("other/app", 2),
    }
    assert receiver.received == []
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.db'}", controller=controller_of(sim))
    assert [(e.job, e.number) for e in ledger.entries()] == [("gone/job", 1)]
    assert ledger.cursors() == {}
    assert ledger.release_dead_claims() == 1  # still claimed
    ledger.close()


def test_resume_after_interrupt_sends_only_what_is_left(config, receiver, sim, tmp_path) -> None:
    # the daemon has already run: cursors exist and must not move backwards
    assert main(["--config", str(config), "run", "--once"]) == 0
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.db'}")
    cursors = ledger.cursors()
    assert cursors == {"team/old": 30, "other/app": 2}
    # an interrupted catch-up: Jenkins broke down for one job half-way
    sim.fail("/job/team/job/old/", 503)
    assert main(["--config", str(config), "catch-up", "--since", "60d"]) == 1
    partial = Counter(receiver.accepted_keys())
    assert ("other/app", 1) in partial
    sim.heal()
    assert main(["--config", str(config), "catch-up", "--since", "60d"]) == 0
    keys = Counter(receiver.accepted_keys())
    assert set(keys) == {("team/old", n) for n in range(1, 31)} | {
        ("other/app", 1),
        ("other/app", 2),
    }
    assert max(keys.values()) == 1  # never twice
    assert ledger.cursors() == cursors  # never moved backwards
    # and a third run has nothing left to do
    before = len(receiver.received)
    assert main(["--config", str(config), "catch-up", "--since", "60d"]) == 0
    assert len(receiver.received) == before
    ledger.close()


def test_bad_window(config, capsys) -> None:
    assert main(["--config", str(config), "catch-up", "--since", "1d", "--until", "2d"]) == 2
    assert "must be before" in capsys.readouterr().err
    assert main(["--config", str(config), "catch-up", "--since", "yesterday"]) == 2


def test_progress_as_log_lines_off_a_terminal(config, capsys) -> None:
    assert main(["--config", str(config), "catch-up", "--since", "60d"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "harvester.catchup" in line]
    assert lines[0].endswith("catch-up: 2 job(s) to scan")
    assert "2/2 jobs scanned, 32 collected, 32 delivered, 0 failed" in lines[-1]


def test_progress_bar_on_a_terminal() -> None:
    stream = io.StringIO()
    bar = BarProgress(stream)
    bar.start(4)
    collect = CollectReport(jobs_seen=4, jobs_scanned=3, builds_collected=12)
    delivery = DeliveryReport(delivered=10, dead=1)
    bar.update(collect, delivery)
    bar.finish(collect, delivery)
    text = stream.getvalue()
    assert "3/4" in text
    assert "12 collected, 10 delivered, 1 failed" in text


def test_receiver_down_leaves_rows_pending_and_exits_1(config, receiver, tmp_path) -> None:
    receiver.default = Reply(503, "maintenance")
    assert main(["--config", str(config), "catch-up", "--since", "60d"]) == 1
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.db'}")
    counts = ledger.stats().counts
    assert counts["sent"] == 0
    assert counts["dead"] == 0
    assert counts["pending"] == 32  # every build kept for the next run
    ledger.close()


def test_a_dry_run_creates_no_ledger(config, receiver, capsys, tmp_path) -> None:
    assert main(["--config", str(config), "catch-up", "--since", "252h", "--dry-run"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3  # it did read the builds
    assert not list(tmp_path.glob("l.db*"))  # README "Commands": "it creates no ledger either"


def test_a_dry_run_does_not_migrate_an_older_ledger(config, capsys, tmp_path) -> None:
    old = Ledger.open(f"sqlite:///{tmp_path / 'l.db'}", migrate=False)
    old.upgrade("0002")
    old.close()
    assert main(["--config", str(config), "catch-up", "--since", "252h", "--dry-run"]) == 2
    assert "db upgrade" in capsys.readouterr().err
