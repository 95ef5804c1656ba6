"""The `ledger` and `db` commands on a real ledger filled by the test."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from harvester.attempt import Attempt
from harvester.cli.main import main
from harvester.ledger import Ledger, NewBuild
from tests.helpers import write_config

NOW = datetime.now(tz=UTC).replace(microsecond=0)


@pytest.fixture
def filled(tmp_path: Path) -> tuple[Path, Ledger]:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    config = write_config(tmp_path / "c.yaml", ledger_url=url)
    ledger = Ledger.open(url, controller="jenkins.example.com")
    rows = [
        NewBuild("team/app", 1, "SUCCESS", '{"build_number": 1}', NOW - timedelta(hours=3)),
        NewBuild("team/app", 2, "FAILURE", '{"build_number": 2}', NOW - timedelta(hours=2)),
        NewBuild("mbp/feature%2Fx", 7, "SUCCESS", '{"build_number": 7}', NOW - timedelta(hours=1)),
    ]
    ledger.add_pending(rows, now=NOW)
    first, second, third = sorted(ledger.claim_due(NOW, 3, "test"), key=lambda e: e.number)
    ledger.record_attempt(
        first.id, Attempt("sent", 202, None, 9), now=NOW, max_attempts=5, owner="test"
    )
    ledger.record_attempt(
        second.id,
        Attempt("dead", 400, "HTTP 400: missing field", 4),
        now=NOW,
        max_attempts=5,
        owner="test",
    )
    ledger.release([third.id], "test")
    return config, ledger


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_json_has_the_contract_keys(filled, capsys) -> None:
    config, _ = filled
    code, out, _ = run(capsys, "--config", str(config), "ledger", "list", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [(r["job"], r["build"]) for r in rows] == [
        ("mbp/feature%2Fx", 7),
        ("team/app", 2),
        ("team/app", 1),
    ]
    first = rows[2]
    assert first["status"] == "sent"
    assert first["result"] == "SUCCESS"
    assert first["attempts"] == 1
    assert first["started_at"].endswith("Z")
    assert first["sent_at"].endswith("Z")
    assert rows[1]["last_error"] == "HTTP 400: missing field"
    assert rows[0]["sent_at"] is None
    for key in (
        "job",
        "build",
        "status",
        "result",
        "attempts",
        "started_at",
        "sent_at",
        "last_error",
    ):
        assert key in first


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--status", "dead"], [2]),
        (["--status", "pending"], [7]),
        (["--job", "team/*"], [2, 1]),
        (["--job", "mbp/feature/x"], [7]),
        (["--limit", "1"], [7]),
    ],
)
def test_list_filters(filled, capsys, args, expected) -> None:
    config, _ = filled
    code, out, _ = run(capsys, "--config", str(config), "ledger", "list", "--json", *args)
    assert code == 0
    assert [r["build"] for r in json.loads(out)] == expected


def test_list_piped_is_tab_separated(filled, capsys) -> None:
    config, _ = filled
    code, out, _ = run(capsys, "--config", str(config), "ledger", "list")
    assert code == 0
    lines = [line.split("\t") for line in out.strip().splitlines()]
    assert lines[0] == ["job", "build", "status", "result", "age", "attempts"]
    assert ["team/app", "2", "dead"] in [line[:3] for line in lines[1:]]
    code, out, _ = run(capsys, "--config", str(config), "ledger", "list", "--wide")
    header, *rows = [line.split("\t") for line in out.rstrip("\n").splitlines()]
    assert header[-1] == "last error" and "controller" not in header  # one controller
    assert any("HTTP 400" in row[-1] for row in rows)
    assert all(len(row) == len(header) for row in rows)


@pytest.mark.parametrize("columns", [80, 120])
def test_list_fits_the_terminal(filled, columns: int) -> None:
    # On a real terminal (a pty of the given width): every line fits, the job names show.
    import fcntl  # noqa: PLC0415
    import pty  # noqa: PLC0415
    import struct  # noqa: PLC0415
    import termios  # noqa: PLC0415

    config, _ = filled
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "harvester", "--config", str(config), "ledger", "list"],
        stdout=follower,
        stderr=subprocess.DEVNULL,
        env={**env, "TERM": "xterm"},
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert proc.wait(timeout=30) == 0
    os.close(leader)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode())
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines and all(len(line) <= columns for line in lines), lines
    assert "team/app" in text and "dead" in text
    assert "." not in "".join(lines[1:]).split("team/app")[0][-3:]  # no microseconds anywhere


def test_show_with_payload_and_history(filled, capsys) -> None:
    config, _ = filled
    code, out, _ = run(capsys, "--config", str(config), "ledger", "show", "team/app", "1", "--json")
    assert code == 0
    detail = json.loads(out)
    assert detail["payload"] == {"build_number": 1}
    assert [h["http_status"] for h in detail["history"]] == [202]
    # the decoded name is accepted where unambiguous
    code, out, _ = run(capsys, "--config", str(config), "ledger", "show", "mbp/feature/x", "7")
    assert code == 0
    assert "build_number" in out


def test_show_unknown_build(filled, capsys) -> None:
    config, _ = filled
    code, _, err = run(capsys, "--config", str(config), "ledger", "show", "team/app", "99")
    assert code == 2  # bad usage: the ledger holds no such build
    assert "team/app #99" in err
    assert "ledger list" in err


def test_retry_one_and_all_dead(filled, capsys) -> None:
    config, ledger = filled
    code, out, _ = run(capsys, "--config", str(config), "ledger", "retry", "team/app", "2")
    assert code == 0
    assert "1 dead build(s)" in out
    entry = ledger.entry("team/app", 2)
    assert entry is not None
    assert entry.status == "pending"
    dead_id = entry.id
    # The operator's change is in the row's history, after the attempts that made it dead.
    last = ledger.history(dead_id)[-1]
    assert (last.outcome, last.error) == (
        "operator",
        "ledger retry: dead -> pending, attempts reset",
    )
    later = datetime.now(tz=UTC) + timedelta(hours=1)
    assert dead_id in [e.id for e in ledger.claim_due(later, 10, "test")]
    ledger.record_attempt(
        dead_id, Attempt("dead", 400, "x", 1), now=NOW, max_attempts=5, owner="test"
    )
    code, out, _ = run(
        capsys, "--config", str(config), "ledger", "retry", "--dead", "--job", "other/*"
    )
    assert code == 0
    assert "0 dead" in out
    code, out, _ = run(capsys, "--config", str(config), "ledger", "retry", "--dead")
    assert code == 0
    assert "1 dead" in out
    assert ledger.stats().counts["dead"] == 0


def test_retry_usage_errors(filled, capsys) -> None:
    config, _ = filled
    code, _, err = run(capsys, "--config", str(config), "ledger", "retry")
    assert code == 2
    assert "JOB BUILD, --dead or --pending" in err
    code, _, err = run(capsys, "--config", str(config), "ledger", "retry", "team/app")
    assert code == 2
    assert "BUILD" in err


def test_forget(filled, capsys) -> None:
    config, ledger = filled
    code, out, _ = run(capsys, "--config", str(config), "ledger", "forget", "team/app", "1")
    assert code == 0
    assert "collects and sends it again" in out
    assert ledger.entry("team/app", 1) is None
    cursors = ledger.cursors()
    code, _, _ = run(capsys, "--config", str(config), "ledger", "forget", "team/app", "1")
    assert code == 2  # not in the ledger (any more): an error, and nothing changes
    assert ledger.cursors() == cursors


def test_stats(filled, capsys) -> None:
    config, ledger = filled
    ledger.add_pending(
        [], now=NOW, hold=[("team/app", 9, "still running"), ("other/job", 4, "still running")]
    )
    code, out, _ = run(capsys, "--config", str(config), "ledger", "stats", "--json")
    assert code == 0
    stats = json.loads(out)
    assert stats["counts"] == {"pending": 1, "sent": 1, "dead": 1, "skipped": 0}
    assert stats["held"] == 2
    assert stats["oldest_pending_started_at"].endswith("Z")
    assert stats["last_successful_cycle_at"] is None


def test_jobs_show_cursors_held_builds_and_why(filled, capsys) -> None:
    config, ledger = filled
    ledger.add_pending(
        [],
        now=NOW,
        cursor=("team/app", 8),
        hold=[("team/app", 9, "still running"), ("team/app", 11, "wfapi answered 503")],
    )
    code, out, _ = run(capsys, "--config", str(config), "ledger", "jobs")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "job\tcursor\tlast collected\theld (why)"  # piped: tab-separated
    (app,) = [line for line in lines if line.startswith("team/app\t")]
    assert app.split("\t")[1] == "#8"
    assert app.endswith("#9 still running; #11 wfapi answered 503")
    code, out, _ = run(
        capsys, "--config", str(config), "ledger", "jobs", "--json", "--job", "team/*"
    )
    (job,) = json.loads(out)
    assert job["job"] == "team/app"
    assert [(h["number"], h["reason"]) for h in job["held"]] == [
        (9, "still running"),
        (11, "wfapi answered 503"),
    ]
    assert job["last_collected_at"].endswith("Z")


def test_forget_is_in_the_new_rows_history(filled, capsys) -> None:
    config, ledger = filled
    code, _, _ = run(capsys, "--config", str(config), "ledger", "forget", "team/app", "1")
    assert code == 0
    before = ledger.entries()
    assert all(e.job != "team/app" or e.number != 1 for e in before)
    ledger.add_pending([NewBuild("team/app", 1, "SUCCESS", "{}", NOW)], now=NOW)
    code, out, _ = run(capsys, "--config", str(config), "ledger", "show", "team/app", "1", "--json")
    history = json.loads(out)["history"]
    assert history[0]["outcome"] == "operator"
    assert history[0]["error"].startswith("ledger forget: the row was")


def test_installed_entry_point_from_an_empty_directory(tmp_path: Path) -> None:
    """The console script, run from elsewhere, finds the migrations inside the package."""
    workdir = tmp_path / "empty"
    workdir.mkdir()
    config = write_config(tmp_path / "c.yaml", ledger_url="sqlite:///ledger.db")
    exe = Path(sys.executable).parent / "harvester"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARVESTER_")}
    result = subprocess.run(
        [str(exe), "--config", str(config), "db", "upgrade"],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (workdir / "ledger.db").exists()
    result = subprocess.run(
        [sys.executable, "-m", "harvester", "--config", str(config), "ledger", "list", "--json"],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    bad = tmp_path / "bad.yaml"
    bad.write_text(config.read_text().replace("instance_guid: ", "instance_guid: nope #"))
    result = subprocess.run(
        [str(exe), "--config", str(bad), "check"],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 2
    # Said once, on check's own line (it used to be printed a second time as an error).
    said = result.stdout + result.stderr
    assert said.count("sei.instance_guid: not a valid UUID") == 1
    assert "FAIL config: sei.instance_guid: not a valid UUID" in result.stdout
    # the ledger commands need only the ledger section: the bad sei section does not stop them
    result = subprocess.run(
        [str(exe), "ledger", "list", "--config", str(bad)],  # global option after the command
        cwd=workdir,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_config_path_from_the_environment(filled, capsys, monkeypatch, tmp_path) -> None:
    config, _ = filled
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HARVESTER_CONFIG", str(config))
    code, out, _ = run(capsys, "ledger", "list", "--json")
    assert code == 0
    assert len(json.loads(out)) == 3
    monkeypatch.delenv("HARVESTER_CONFIG")
    code, _, err = run(capsys, "ledger", "list")  # falls back to ./config.yaml, which is absent
    assert code == 2
    assert "config.yaml" in err and "HARVESTER_CONFIG" in err
