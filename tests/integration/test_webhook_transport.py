"""How the webhook client reaches the receiver (httpx over harvester.util.http1's pool, or
httpx's own transport through a proxy): keep-alive connections the receiver closed while idle,
proxies from the environment, what goes out on the wire. Real servers on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harvester.demo import Receiver
from harvester.errors import WebhookTransientError
from harvester.sei.webhook import WebhookClient
from tests.helpers import ScriptedServer, loopback_tls, through_proxy

BODY = '{"pipeline": "app"}'


@pytest.fixture
def accepting() -> Iterator[ScriptedServer]:
    with ScriptedServer([(202, {}, b"")], close_after_each=True) as server:
        yield server


def test_a_connection_the_receiver_closed_while_idle_is_not_used(
    accepting: ScriptedServer,
) -> None:
    # The receiver drops each connection after answering, without saying so. A POST is never
    # sent twice on a guess, so the client must notice the closed connection before using it.
    webhook = WebhookClient(accepting.url + "v1/custom-cicd", "secret", auth_scheme="ApiKey")
    for _ in range(3):
        assert webhook.post_once(BODY).outcome == "sent"
        time.sleep(0.6)  # idle long enough to be checked (util/http1.py: IDLE_CHECK_SECONDS)
    webhook.close()
    assert [(method, target, body) for _, method, target, body in accepting.served] == [
        ("POST", "/v1/custom-cicd", BODY.encode())
    ] * 3
    assert accepting.connections() == 3


def test_keep_alive_connections_are_reused(accepting: ScriptedServer) -> None:
    accepting.close_after_each = False
    webhook = WebhookClient(accepting.url + "hook?tenant=7", "secret", max_concurrency=2)
    for _ in range(5):
        assert webhook.post_once(BODY).outcome == "sent"
    webhook.close()
    assert accepting.connections() == 1
    assert {target for _, _, target, _ in accepting.served} == {"/hook?tenant=7"}


def test_a_proxy_from_the_environment_carries_the_posts(
    accepting: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The scripted server stands in for the proxy: a request for a host that does not resolve
    # reaches it only through the proxy, in absolute form.
    through_proxy(monkeypatch, accepting.url)
    webhook = WebhookClient("http://sei.invalid/v1/custom-cicd", "secret")
    assert webhook.post_once(BODY).outcome == "sent"
    assert [target for _, _, target, _ in accepting.served] == ["http://sei.invalid/v1/custom-cicd"]

    monkeypatch.setenv("NO_PROXY", "sei.invalid")
    direct = WebhookClient("http://sei.invalid/v1/custom-cicd", "secret")
    with pytest.raises(WebhookTransientError, match="cannot reach the webhook"):
        direct.post_once(BODY)


def test_https_is_verified_against_httpx_s_trust_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Harness SEI is HTTPS: the transport verifies with httpx's own default context (certifi,
    # or SSL_CERT_FILE), as httpx's transport did.
    tls, bundle = loopback_tls(tmp_path)
    receiver = Receiver(token="secret")
    receiver.tls = tls
    with receiver:
        assert receiver.url.startswith("https://")
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        untrusted = WebhookClient(receiver.url, "secret")
        with pytest.raises(WebhookTransientError, match="certificate verify failed"):
            untrusted.probe_empty()
        monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
        trusted = WebhookClient(receiver.url, "secret")
        # `{}` lacks the required fields: the receiver's 400 proves TLS and credentials work.
        assert trusted.probe_empty() == 400
        trusted.close()
