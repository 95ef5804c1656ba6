"""The status page in a real browser: Debian's Chromium, headless, loads it from a daemon running
against the simulator, and the tests read the DOM it rendered (scripts, had any run, included).
.ci/run installs Chromium (`apt-get install chromium`)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harvester.demo import Reply, SimBuild, Simulator
from harvester.util.httpserver import QuietHandler, ThreadedServer
from tests.helpers import loopback_config, now_ms, spawn, wait_for
from tests.system.test_daemon import free_port

# Each would mark the page as run, were it markup rather than text. Jenkins' full names: the
# second one's "/" makes "<script>...<" a folder, as it would on a controller.
IMG = "<img src=x onerror=document.body.dataset.pwned=1>"
SCRIPT = "<script>document.body.dataset.pwned=2</script>"


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Chromium not found: install Debian's chromium (`apt-get install chromium`)")
    return found


def dom(url: str, profile: Path) -> str:
    """The DOM after the page loaded and any script on it ran, as Chromium serializes it."""
    done = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",  # CI runs as root
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=2000",  # let anything that would run, run
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class _Unescaped(ThreadedServer):
    """The same names pasted into a page without escaping: what the browser test must catch."""

    def make_handler(self) -> type[QuietHandler]:
        class Handler(QuietHandler):
            def do_GET(self) -> None:
                page = f"<!doctype html><html><body><p>{IMG}</p><p>{SCRIPT}</p></body></html>"
                self.respond(200, page.encode(), "text/html")

        return Handler


def test_the_detector_sees_a_page_that_does_not_escape(tmp_path: Path) -> None:
    with _Unescaped() as server:
        rendered = dom(f"http://127.0.0.1:{server.port}/", tmp_path / "profile")
    assert re.search(r'<body data-pwned="[12]"', rendered)


def test_the_status_page_in_chromium(tmp_path: Path, receiver) -> None:
    sim = Simulator().start()
    try:
        base = now_ms() - 3_600_000
        for name in ("team/app", IMG, SCRIPT):
            job = sim.add(name)
            job.builds = [SimBuild(n, base + n * 60_000) for n in (1, 2, 3)]
        running = sim.add("team/slow")
        running.builds = [SimBuild(1, base), SimBuild(2, now_ms(), in_progress=True, result=None)]
        receiver.then(Reply(400, '{"error":"missing field: <b>pipeline</b>"}'))
        port = free_port()
        config = loopback_config(
            sim,
            receiver,
            tmp_path,
            harvest={"interval_seconds": 2},
            server={"listen": f"127.0.0.1:{port}"},
            sei={"max_attempts": 1},
        )
        proc = spawn(config, "run")
        try:
            assert wait_for(lambda: len(receiver.accepted()) == 9, timeout=60)
            page = f"http://127.0.0.1:{port}/"
            profile = tmp_path / "profile"
            overview = ""

            def settled() -> bool:
                nonlocal overview
                overview = dom(page, profile)
                return ">9</a>" in _card(overview, "count-sent")

            assert wait_for(settled, timeout=60), overview
            held = dom(f"{page}held", profile)
            dead = dom(f"{page}builds?status=dead", profile)
            everything = dom(f"{page}builds", profile)
        finally:
            proc.terminate()
            proc.communicate(timeout=30)
    finally:
        sim.stop()
    assert ">1</a>" in _card(overview, "count-dead")
    assert ">1</a>" in _card(overview, "count-held")
    assert re.search(r'<svg [^>]*role="img"', overview)
    assert re.search(r'<path class="delivered" d="M[0-9.,L ]+"', overview)
    assert 'data-delivered="9"' in overview
    # The dead row and its error, as text.
    assert "HTTP 400" in dead
    assert "missing field: &lt;b&gt;pipeline&lt;/b&gt;" in dead
    assert "still running" in held
    # The hostile names are there, as text, and nothing ran.
    for rendered in (overview, dead, everything):
        assert "data-pwned" not in rendered
        assert "<script>document" not in rendered
    assert "&lt;img src=x onerror=document.body.dataset.pwned=1&gt;" in everything
    assert "&lt;script&gt;document.body.dataset.pwned=2&lt;/script&gt;" in everything


def _card(rendered: str, card: str) -> str:
    found = re.search(rf'id="{card}".*?</div>\s*</div>', rendered, re.S)
    assert found, f"no #{card} on the page"
    return found.group(0)
