"""How the webhook client reaches the receiver (a plain httpx.Client): keep-alive connections the
receiver closed while idle, proxies from the environment, TLS, answers framed oddly or read only as
far as needed. Real servers on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harvester.demo import Receiver
from harvester.errors import WebhookRejected, WebhookTransientError
from harvester.sei.webhook import WebhookClient
from tests.helpers import RawServer, ScriptedServer, loopback_tls, through_proxy

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
        time.sleep(0.6)
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
    # Harness SEI is HTTPS: httpx verifies with its own default context (certifi, or
    # SSL_CERT_FILE).
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


# -- answers the hand-written transport got wrong (issue 20), on a raw server ----------------------


# A gzip header, then a deflate stream zlib refuses ("invalid block type").
BROKEN_GZIP = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + b"\xff" * 20


def _answer(status: str, headers: list[str], body: bytes = b"") -> bytes:
    lines = [f"HTTP/1.1 {status}", *headers, f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode() + body


def test_an_early_hints_answer_is_not_taken_for_the_final_one() -> None:
    answer = _answer("103 Early Hints", ["Link: </a.css>; rel=preload"]).replace(
        b"Content-Length: 0\r\n", b""
    ) + _answer("202 Accepted", [], b'{"ok": true}')
    with RawServer([answer]) as server:
        webhook = WebhookClient(server.url, "secret", timeout=5)
        assert webhook.post_once(BODY).outcome == "sent"


def test_a_2xx_whose_body_is_not_valid_gzip_is_sent() -> None:
    broken = _answer("202 Accepted", ["Content-Encoding: gzip"], BROKEN_GZIP)
    with RawServer([broken]) as server:
        webhook = WebhookClient(server.url, "secret", timeout=5)
        assert webhook.post_once(BODY).outcome == "sent"


def test_a_rejection_whose_body_is_not_valid_gzip_is_still_a_rejection() -> None:
    broken = _answer("400 Bad Request", ["Content-Encoding: gzip"], BROKEN_GZIP)
    with RawServer([broken]) as server:
        webhook = WebhookClient(server.url, "secret", timeout=5)
        with pytest.raises(
            WebhookRejected, match=r"HTTP 400: \(a body that cannot be decompressed\)"
        ):
            webhook.post_once(BODY)


def test_folded_header_lines_are_bounded() -> None:
    # 3,000 folded lines (30 kB) are read at once; 30,000 (300 kB) are over httpcore's bound
    # for an answer's head, and fail fast as a transient error (retried, never dead).
    def folded(lines: int) -> bytes:
        return _answer("202 Accepted", [f"X-Folded: start\r\n {'x' * 8}"] + [f" {'y' * 8}"] * lines)

    with RawServer([folded(3000), folded(30000)]) as server:
        webhook = WebhookClient(server.url, "secret", timeout=5)
        started = time.monotonic()
        assert webhook.post_once(BODY).outcome == "sent"
        with pytest.raises(WebhookTransientError):
            webhook.post_once(BODY)
        assert time.monotonic() - started < 5


def test_a_large_or_trickling_body_is_read_only_as_far_as_needed() -> None:
    # A 202 with 8 MiB of body, and a 400 whose body trickles a byte at a time: the outcome comes
    # from the status line; of the body at most the excerpt, within the timeout.
    big = _answer("202 Accepted", [], b"x" * (8 * 1024 * 1024))
    with RawServer([big]) as server:
        webhook = WebhookClient(server.url, "secret", timeout=5)
        assert webhook.post_once(BODY).outcome == "sent"
    head = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 100000\r\n\r\n"
    with RawServer([[head] + [b"e"] * 400], pause=0.05) as server:
        webhook = WebhookClient(server.url, "secret", timeout=1)
        started = time.monotonic()
        with pytest.raises(WebhookRejected, match=r"HTTP 400: e+"):
            webhook.post_once(BODY)
        assert time.monotonic() - started < 4
