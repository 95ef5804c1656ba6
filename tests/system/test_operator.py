"""The operator's experience: every expected condition ends in one clear line and
the right exit code, never a traceback; secrets never printed; CLI conventions."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from harvester import __version__
from harvester.cli.main import main
from harvester.demo import SimBuild, Simulator
from harvester.util.timeparse import to_epoch_ms
from tests.helpers import loopback_dict

REPO = Path(__file__).resolve().parents[2]


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def harvester(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    base = {k: v for k, v in os.environ.items() if not k.startswith("HARVESTER_")}
    return subprocess.run(
        [sys.executable, "-m", "harvester", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=cwd,
        timeout=120,
        check=False,
    )


@pytest.fixture
def sim() -> Simulator:
    with Simulator() as simulator:
        simulator.add("app").builds = [SimBuild(1, to_epoch_ms(datetime.now(tz=UTC)) - 60_000)]
        yield simulator


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


# -- secrets ---------------------------------------------------------------------------------------


def test_a_yaml_error_names_the_place_not_the_text(tmp_path, capsys) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("jenkins:\n  api_token: s3cr3t-t0ken: oops\n")
    for command in ("run", "check"):
        code, out, err = run(
            capsys, "--config", str(config), command, *(["--once"] * (command == "run"))
        )
        assert code == 2
        assert "line 2, column" in out + err
        assert "s3cr3t" not in out + err


def test_credentials_in_urls_are_never_shown_or_sent(sim, receiver, tmp_path, capsys) -> None:
    data = loopback_dict(sim, receiver, tmp_path)
    data["jenkins"]["url"] = sim.url.replace("http://", "http://admin:hunter2@")
    config = write(tmp_path / "c.yaml", data)
    code, _, err = run(capsys, "--log-level", "DEBUG", "--config", str(config), "run", "--once")
    assert code == 0, err
    (body,) = receiver.accepted()
    assert "hunter2" not in json.dumps(body) and "admin" not in body["instance_url"]
    assert "hunter2" not in err
    data["ledger"]["url"] = "postgresql+psycopg://harvester:pgsecret@127.0.0.1:1/ledger"
    config = write(tmp_path / "pg.yaml", data)
    code, out, err = run(capsys, "--config", str(config), "ledger", "list")
    assert code == 2
    assert "pgsecret" not in out + err and "ledger" in err


# -- expected conditions: one line, the right exit code ---------------------------------------


def test_a_busy_status_port_is_a_config_error(sim, receiver, tmp_path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = write(
            tmp_path / "c.yaml",
            loopback_dict(sim, receiver, tmp_path, server={"listen": f"127.0.0.1:{port}"}),
        )
        result = harvester("--config", str(config), "run")
    assert result.returncode == 2
    assert f"server.listen: 127.0.0.1:{port}" in result.stderr and "in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_environment_mistakes_are_named(sim, receiver, tmp_path) -> None:
    config = write(tmp_path / "c.yaml", loopback_dict(sim, receiver, tmp_path))
    result = harvester(
        "--config", str(config), "check", env={"HARVESTER_JENKINS__INCLUDE": "team-a/**"}
    )
    assert result.returncode == 2
    said = result.stdout + result.stderr  # check says it on its own FAIL line
    assert "HARVESTER_JENKINS__INCLUDE" in said and "JSON" in said
    result = harvester("--config", str(config), "check", env={"HARVESTER_SEI_TOKEN": "x"})
    assert result.returncode == 2
    said = result.stdout + result.stderr
    assert "HARVESTER_SEI_TOKEN" in said and "HARVESTER_SEI__TOKEN" in said
    assert "Traceback" not in result.stderr


def test_a_closed_pipe_is_no_traceback(tmp_path) -> None:
    done = subprocess.run(
        f"{sys.executable} -m harvester demo | head -3",
        shell=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert len(done.stdout.splitlines()) == 3
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


# -- messages keep the root cause ------------------------------------------------------------------


def test_jenkins_messages_keep_the_root_cause(receiver, tmp_path, capsys) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    base = {"username": "harvester", "api_token": "t"}

    def check_with(url: str) -> str:
        config = tmp_path / "c.yaml"
        cfg = loopback_dict(_Fake(url), receiver, tmp_path, jenkins=base)
        write(config, cfg)
        code, out, _ = run(capsys, "--config", str(config), "check")
        assert code == 3
        return out

    assert "connection refused" in check_with(f"http://127.0.0.1:{port}/")
    with Simulator() as sim:
        out = check_with(sim.url.replace("http://", "https://"))
        assert "wrong version number: is jenkins.url https on a plain-http port?" in out
        assert "verify_tls" not in out
    with Simulator() as sim:
        sim.api_token = "t"
        sim.fail("/api/json", 404)
        sim.fail("/whoAmI", 404)
        out = check_with(sim.url)
        assert "404 on the API root: does jenkins.url need the context path" in out


class _Fake:
    """A stand-in for a simulator where only the URL matters."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.api_token = "t"


def test_debug_adds_one_line_per_request(sim, receiver, tmp_path, capsys) -> None:
    config = write(tmp_path / "c.yaml", loopback_dict(sim, receiver, tmp_path))
    code, _, err = run(capsys, "--log-level", "DEBUG", "--config", str(config), "run", "--once")
    assert code == 0
    assert "GET api/json -> 200 in" in err
    assert "POST " in err and "-> 202 in" in err
    assert "cursor -> #1" in err
    assert "tree=" not in err  # paths without their (long) queries


def test_json_logs_carry_the_fields_as_keys(sim, receiver, tmp_path, capsys) -> None:
    config = write(
        tmp_path / "c.yaml",
        loopback_dict(sim, receiver, tmp_path, logging={"format": "json", "level": "DEBUG"}),
    )
    code, _, err = run(capsys, "--config", str(config), "run", "--once")
    assert code == 0
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("method") == "GET"]
    assert requests and {"path", "status", "ms"} <= set(requests[0])


# -- CLI conventions -------------------------------------------------------------------------------


def test_version_and_help_with_examples(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"harvester {__version__}"
    for command in (["run"], ["catch-up"], ["check"], ["ledger", "list"], ["db", "upgrade"]):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        out = capsys.readouterr().out
        assert "example:" in out and "harvester " in out.split("example:")[1]


def test_global_options_after_the_subcommand(sim, receiver, tmp_path, capsys) -> None:
    config = write(tmp_path / "c.yaml", loopback_dict(sim, receiver, tmp_path))
    assert run(capsys, "check", "--config", str(config))[0] == 0
    assert run(capsys, "ledger", "stats", "--config", str(config), "--log-level", "debug")[0] == 0


def test_ledger_commands_need_only_the_ledger_section(tmp_path, capsys) -> None:
    config = write(tmp_path / "c.yaml", {"ledger": {"url": f"sqlite:///{tmp_path / 'l.db'}"}})
    assert run(capsys, "--config", str(config), "db", "upgrade")[0] == 0
    code, out, _ = run(capsys, "--config", str(config), "ledger", "list")
    assert code == 0 and "no builds" in out
    code, out, _ = run(capsys, "--config", str(config), "check")
    assert code == 2 and "FAIL config: jenkins" in out  # the harvesting commands need the rest


def test_config_example_is_the_documented_file_and_loads(tmp_path, capsys) -> None:
    code, out, _ = run(capsys, "config", "example")
    assert code == 0
    assert out == (REPO / "config.example.yaml").read_text(encoding="utf-8")
    assert (REPO / "harvester" / "config.example.yaml").read_bytes() == (
        REPO / "config.example.yaml"
    ).read_bytes()


def test_a_changed_since_is_noted_at_start(sim, receiver, tmp_path, capsys) -> None:
    config = write(tmp_path / "c.yaml", loopback_dict(sim, receiver, tmp_path))
    assert run(capsys, "--config", str(config), "run", "--once")[0] == 0
    write(tmp_path / "c.yaml", loopback_dict(sim, receiver, tmp_path, harvest={"since": "90d"}))
    code, _, err = run(capsys, "--config", str(config), "run", "--once")
    assert code == 0
    assert "harvest.since changed from 7d to 90d" in err and "catch-up --since 90d" in err


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_demo_serves_until_interrupted_and_a_daemon_runs_against_it(tmp_path) -> None:
    # A newcomer's first steps: the simulator and the receiver by hand (`python -m
    # harvester.demo` is `harvester demo --serve`), the printed config, a cycle against them.
    jenkins_port, sei_port = _port(), _port()
    command = [sys.executable, "-m", "harvester.demo", "--jenkins-port", str(jenkins_port)]
    demo = subprocess.Popen(
        [*command, "--sei-port", str(sei_port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert demo.stdout is not None
        lines = []
        while not lines or not lines[-1].startswith("  listen:"):
            line = demo.stdout.readline()
            assert line, "the demo printed no config"
            lines.append(line)
        config = yaml.safe_load("".join(lines))
        assert config["jenkins"]["url"] == f"http://127.0.0.1:{jenkins_port}/"
        config["server"]["listen"] = f"127.0.0.1:{_port()}"
        path = tmp_path / "demo.yaml"
        path.write_text(yaml.safe_dump(config))
        once = harvester("--config", str(path), "run", "--once", cwd=tmp_path)
        # The demo's receiver refuses its first build, so that a dead row shows: exit 1.
        assert once.returncode == 1, once.stderr
        listed = harvester("--config", str(path), "ledger", "list", cwd=tmp_path)
        assert "platform/backend/api\t" in listed.stdout
        assert "\tdead\t" in listed.stdout
        retried = harvester("--config", str(path), "ledger", "retry", "--dead", cwd=tmp_path)
        assert "1 dead build(s) set back to pending" in retried.stdout
        again = harvester("--config", str(path), "run", "--once", cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        listed = harvester("--config", str(path), "ledger", "list", cwd=tmp_path)
        assert "\tdead\t" not in listed.stdout
    finally:
        demo.send_signal(2)  # SIGINT: Ctrl-C
        _, err = demo.communicate(timeout=15)
    assert demo.returncode == 0, err
    assert "Ctrl-C stops the simulator and the receiver" in err
    assert "open http://127.0.0.1:9465/ (the status page)" in err
    assert "Traceback" not in err


def test_the_demo_names_a_busy_port(tmp_path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = harvester("demo", "--serve", "--jenkins-port", str(port), cwd=tmp_path)
    assert done.returncode == 2
    assert f"--jenkins-port {port}: cannot listen there" in done.stderr
