"""How the Jenkins client reaches the controller (python-jenkins on its requests session):
proxies from the environment, TLS verification, retries, keep-alive connections the server
dropped, compressed answers, redirects. Real servers on loopback (the simulator, over HTTPS with
a trustme CA, and small servers that misbehave on purpose)."""

from __future__ import annotations

import gzip
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harvester.demo import Simulator
from harvester.errors import (
    JenkinsError,
    JenkinsMalformedResponse,
    JenkinsTransientError,
    JenkinsUnreachable,
)
from harvester.jenkins.client import JenkinsClient
from tests.helpers import RawServer, Reply, ScriptedServer, loopback_tls, through_proxy


@pytest.fixture
def sim() -> Simulator:
    with Simulator(root_url="https://wrong-root.example.com/ci/") as simulator:
        yield simulator


def test_proxy_from_the_environment_is_used(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The client reads the proxy variables once, at construction, not per request: they must
    # still take effect. The simulator stands in for the proxy (it serves the absolute-form
    # target a proxy receives), so a request for a host that does not resolve reaches it only
    # through the proxy.
    through_proxy(monkeypatch, sim.url)
    sim.add("app")
    jenkins = JenkinsClient(
        "http://jenkins.invalid:8080/", sim.username, sim.api_token, timeout=5, retries=0
    )
    assert [job.full_name for job in jenkins.discover()] == ["app"]
    monkeypatch.setenv("NO_PROXY", "jenkins.invalid")
    direct = JenkinsClient(
        "http://jenkins.invalid:8080/", sim.username, sim.api_token, timeout=5, retries=0
    )
    with pytest.raises(JenkinsTransientError, match="cannot connect"):
        direct.discover()


def test_tls_is_verified_unless_the_config_says_otherwise(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tls, bundle = loopback_tls(tmp_path)
    simulator = Simulator()
    simulator.tls = tls
    with simulator as sim:
        sim.add("app")
        assert sim.url.startswith("https://")

        def names(verify_tls: bool | Path) -> list[str]:
            jenkins = JenkinsClient(
                sim.url, sim.username, sim.api_token, timeout=5, verify_tls=verify_tls, retries=0
            )
            try:
                return [job.full_name for job in jenkins.discover()]
            finally:
                jenkins.close()

        with pytest.raises(JenkinsUnreachable, match="certificate verify failed") as failure:
            names(True)
        assert "jenkins.verify_tls" in str(failure.value)
        assert sim.counts["root"] == 0  # the handshake failed: no retry, no request
        assert names(bundle) == ["app"]
        assert "Unverified" not in caplog.text
        with caplog.at_level(logging.WARNING):
            assert names(False) == ["app"]
        assert "Unverified HTTPS to 127.0.0.1: jenkins.verify_tls is false" in caplog.text


# -- servers that misbehave on purpose -------------------------------------------------------------

ROOT = json.dumps(
    {"jobs": [{"_class": "hudson.model.FreeStyleProject", "name": "app", "lastBuild": None}]}
).encode()


@pytest.fixture
def server() -> Iterator[Callable[..., ScriptedServer]]:
    started: list[ScriptedServer] = []

    def start(replies: list[Reply], close_after_each: bool = False) -> ScriptedServer:
        started.append(ScriptedServer(replies, close_after_each=close_after_each).start())
        return started[-1]

    yield start
    for running in started:
        running.stop()


def test_5xx_is_retried_then_handed_back_and_honours_retry_after(
    server: Callable[..., ScriptedServer],
) -> None:
    busy = server([(503, {"Retry-After": "0"}, b"busy"), (200, {}, ROOT)])
    jenkins = JenkinsClient(busy.url, "u", "t", timeout=5, retries=2, backoff_factor=0)
    assert [job.full_name for job in jenkins.discover()] == ["app"]
    assert len(busy.served) == 2

    failing = server([(502, {}, b"bad gateway")])
    jenkins = JenkinsClient(failing.url, "u", "t", timeout=5, retries=2, backoff_factor=0)
    with pytest.raises(JenkinsTransientError) as failure:
        jenkins.discover()
    assert failure.value.status == 502
    assert len(failing.served) == 3  # the first try and 2 retries, then the last answer


def test_a_keep_alive_connection_the_server_dropped_is_replaced(
    server: Callable[..., ScriptedServer],
) -> None:
    dropping = server([(200, {}, ROOT)], close_after_each=True)
    jenkins = JenkinsClient(dropping.url, "u", "t", timeout=5)
    for _ in range(3):
        assert [job.full_name for job in jenkins.discover()] == ["app"]
    assert len(dropping.served) == 3
    assert dropping.connections() == 3


def test_compressed_answers_are_decoded_and_redirects_refused(
    server: Callable[..., ScriptedServer],
) -> None:
    compressed = server([(200, {"Content-Encoding": "gzip"}, gzip.compress(ROOT))])
    jenkins = JenkinsClient(compressed.url, "u", "t", timeout=5)
    assert [job.full_name for job in jenkins.discover()] == ["app"]

    moved = server([(302, {"Location": "https://elsewhere.example.com/"}, b"")])
    with pytest.raises(JenkinsError, match="redirect, which is not followed") as failure:
        JenkinsClient(moved.url, "u", "t", timeout=5).discover()
    assert "jenkins.url" in str(failure.value)
    assert len(moved.served) == 1


# -- answers that must not end a cycle or fill the memory (issue 20) --------------------------------


def test_a_deeply_nested_answer_is_malformed_not_a_crash(
    server: Callable[..., ScriptedServer],
) -> None:
    # json.loads raises RecursionError on this; it must be the job's malformed answer.
    nested = server([(200, {}, b"[" * 200_000 + b"]" * 200_000)])
    with pytest.raises(JenkinsMalformedResponse, match="not JSON") as failure:
        JenkinsClient(nested.url, "u", "t", timeout=5).discover()
    assert failure.value.url is not None


def test_a_body_that_cannot_be_decompressed_is_malformed_not_a_crash(
    server: Callable[..., ScriptedServer],
) -> None:
    broken = server([(200, {"Content-Encoding": "gzip"}, b"\x1f\x8b\x08\x00not a deflate stream")])
    with pytest.raises(JenkinsMalformedResponse, match="cannot be decompressed"):
        JenkinsClient(broken.url, "u", "t", timeout=5, retries=0).discover()


def test_an_answer_over_the_cap_is_not_read_whole(server: Callable[..., ScriptedServer]) -> None:
    # 1 MiB cap; a 4 MiB answer, and a compressed one that inflates to 64 MiB from 64 KiB.
    huge = server([(200, {}, b" " * (4 * 1024 * 1024))])
    with pytest.raises(JenkinsMalformedResponse, match="too large") as failure:
        JenkinsClient(huge.url, "u", "t", timeout=5, max_response_bytes=1024 * 1024).discover()
    assert "jenkins.max_response_mib" in str(failure.value)
    bomb = server([(200, {"Content-Encoding": "gzip"}, gzip.compress(b"[" + b" " * 64 * 2**20))])
    with pytest.raises(JenkinsMalformedResponse, match="too large"):
        JenkinsClient(bomb.url, "u", "t", timeout=5, max_response_bytes=1024 * 1024).discover()


def test_an_error_answer_is_read_with_the_cap_too(server: Callable[..., ScriptedServer]) -> None:
    # python-jenkins reads a 500's body whole into its message; the cap comes first.
    huge_error = server([(500, {}, b"x" * (4 * 1024 * 1024))])
    jenkins = JenkinsClient(
        huge_error.url, "u", "t", timeout=5, retries=0, max_response_bytes=1024 * 1024
    )
    with pytest.raises(JenkinsMalformedResponse, match="too large"):
        jenkins.discover()


def test_an_answer_that_trickles_is_cut_short_in_time() -> None:
    # Each socket read returns within the timeout, but the body would take 20 s: it is cut at
    # 4 x the timeout, a transient error (retried next cycle), not a worker held for ever.
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    with RawServer([[head] + [b" "] * 200], pause=0.1) as trickling:
        jenkins = JenkinsClient(trickling.url, "u", "t", timeout=0.5, retries=0)
        started = time.monotonic()
        with pytest.raises(JenkinsTransientError, match="cut short"):
            jenkins.discover()
        assert time.monotonic() - started < 5
