"""How the Jenkins client reaches the controller: proxies from the environment, TLS verification.
Real servers on loopback (the simulator, over HTTPS with a trustme CA)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from harvester.demo import Simulator
from harvester.errors import JenkinsTransientError, JenkinsUnreachable
from harvester.jenkins.client import JenkinsClient


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
    monkeypatch.setenv("HTTP_PROXY", sim.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
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


def test_tls_is_verified_unless_the_config_says_otherwise(tmp_path: Path) -> None:
    ca = trustme.CA()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(tls)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    simulator = Simulator()
    simulator.tls = tls
    with simulator as sim:
        sim.add("app")
        assert sim.url.startswith("https://")

        def client(verify_tls: bool | Path) -> JenkinsClient:
            return JenkinsClient(
                sim.url, sim.username, sim.api_token, timeout=5, verify_tls=verify_tls, retries=0
            )

        with pytest.raises(JenkinsUnreachable, match="certificate verify failed") as failure:
            client(True).discover()
        assert "jenkins.verify_tls" in str(failure.value)
        assert [j.full_name for j in client(bundle).discover()] == ["app"]
        with pytest.warns(Warning, match="Unverified HTTPS"):
            assert [j.full_name for j in client(False).discover()] == ["app"]
