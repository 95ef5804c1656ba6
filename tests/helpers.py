"""Small helpers shared by the tests (configs, clocks, a server that misbehaves on purpose)."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import pytest
import trustme
import yaml

from harvester.util.httpserver import QuietHandler, ThreadedServer

GUID = "6f1c1f9e-3b7a-4a53-9a57-1d8d3c2b9e10"
FIXTURES = Path(__file__).parent / "fixtures"


def config_dict(
    *,
    jenkins_url: str = "http://127.0.0.1:1/",
    sei_url: str = "http://127.0.0.1:1/hook",
    ledger_url: str = "sqlite:///harvester.db",
    **sections: dict[str, Any],
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "jenkins": {
            "url": jenkins_url,
            "username": "harvester",
            "api_token": "jenkins-secret-token",
        },
        "sei": {
            "url": sei_url,
            "token": "sei-secret-token",
            "instance_guid": GUID,
            "instance_name": "Test Jenkins",
        },
        "ledger": {"url": ledger_url},
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return data


def loopback_dict(sim: Any, receiver: Any, tmp_path: Path, **sections: Any) -> dict[str, Any]:
    """A config aimed at a running Simulator and Receiver, with a SQLite ledger in tmp_path."""
    jenkins = {"api_token": sim.api_token, **sections.pop("jenkins", {})}
    return config_dict(
        jenkins_url=sim.url,
        sei_url=receiver.url,
        ledger_url=f"sqlite:///{tmp_path / 'l.db'}",
        jenkins=jenkins,
        **sections,
    )


def controller_of(sim: Any) -> str:
    """The controller name a config aimed at ``sim`` has by default (host:port of its URL)."""
    return str(urlsplit(sim.url).netloc)


def loopback_config(
    sim: Any, receiver: Any, tmp_path: Path, name: str = "c.yaml", **sections: Any
) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(loopback_dict(sim, receiver, tmp_path, **sections)))
    return path


def write_config(path: Path, **kwargs: Any) -> Path:
    path.write_text(yaml.safe_dump(config_dict(**kwargs)), encoding="utf-8")
    return path


def fixture_json(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def now_ms() -> int:
    from harvester.util.timeparse import to_epoch_ms  # noqa: PLC0415 - helpers stay light

    return to_epoch_ms(datetime.now(tz=UTC))


def wait_for(predicate: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def spawn(config: Path, *args: str) -> subprocess.Popen[str]:
    """`harvester --config CONFIG ARGS...` in a real subprocess, with no HARVESTER_ variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARVESTER_")}
    return subprocess.Popen(
        [sys.executable, "-m", "harvester", "--config", str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


class Clock:
    """A clock a test moves by hand (``clock.now += timedelta(...)``)."""

    def __init__(self) -> None:
        self.now = datetime.now(tz=UTC)

    def __call__(self) -> datetime:
        return self.now


def harvester_for(sim: Any, receiver: Any, tmp_path: Path, **sections: Any) -> tuple[Any, Clock]:
    """A wired Harvester aimed at the simulator and receiver, on a hand-moved clock."""
    from harvester.app import build_harvester  # noqa: PLC0415
    from harvester.config import settings_from_mapping  # noqa: PLC0415

    data = loopback_dict(sim, receiver, tmp_path, **sections)
    data["sei"].setdefault("timeout_seconds", 0.5)
    harvester = build_harvester(settings_from_mapping(data), threading.Event())
    clock = Clock()
    harvester.clock = clock
    return harvester, clock


Reply = tuple[int, dict[str, str], bytes]


class ScriptedServer(ThreadedServer):
    """Answers every GET or POST with the given replies in turn (the last one again once they
    run out) and records each request as ``(connection, method, target, body)``. With
    ``close_after_each`` it drops the connection after every answer without saying so (no
    ``Connection: close``), as a server closing an idle keep-alive connection does."""

    def __init__(self, replies: list[Reply], *, close_after_each: bool = False) -> None:
        super().__init__()
        self.replies = replies
        self.close_after_each = close_after_each
        self.served: list[tuple[int, str, str, bytes]] = []
        self.lock = threading.Lock()
        # Connections are told apart by a serial number, not id(handler): a finished handler's
        # address is reused by the next one, which made three connections count as two.
        self.serials = itertools.count(1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def connections(self) -> int:
        return len({connection for connection, *_ in self.served})

    def make_handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(QuietHandler):
            serial = 0

            def setup(self) -> None:
                super().setup()
                self.serial = next(server.serials)

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with server.lock:
                    status, headers, content = server.replies[
                        min(len(server.served), len(server.replies) - 1)
                    ]
                    server.served.append((self.serial, self.command, self.path, body))
                self.respond(status, content, "application/json", headers)
                if server.close_after_each:
                    self.close_connection = True

            do_GET = do_POST = _answer

        return Handler

    def __enter__(self) -> Self:
        return self.start()


def through_proxy(monkeypatch: pytest.MonkeyPatch, proxy_url: str) -> None:
    """The environment names ``proxy_url`` as the HTTP proxy for every host."""
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)


def loopback_tls(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context for 127.0.0.1 signed by a throw-away CA, and that CA's bundle."""
    ca = trustme.CA()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(tls)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    return tls, bundle


class RawServer:
    """Answers each request with the next of ``answers``, written byte for byte (framing that
    http.server would not produce: 1xx answers, folded header lines, a body that trickles).
    An answer may be a list of parts, written ``pause`` seconds apart."""

    def __init__(self, answers: list[bytes | list[bytes]], *, pause: float = 0.0) -> None:
        self.answers = list(answers)
        self.pause = pause
        self.connections = 0
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}/"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _read_request(self, connection: socket.socket) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = connection.recv(65536)
            if not chunk:
                return False
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = connection.recv(65536)
            if not chunk:
                return False
            body += chunk
        return True

    def _serve(self) -> None:
        served = 0
        while served < len(self.answers):
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self.connections += 1
            with connection:
                while served < len(self.answers) and self._read_request(connection):
                    answer = self.answers[served]
                    served += 1
                    try:
                        for part in answer if isinstance(answer, list) else [answer]:
                            connection.sendall(part)
                            time.sleep(self.pause)
                    except OSError:
                        break  # the client went away: the next answer goes to its next connection

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._socket.close()
        self._thread.join(5)


class TcpProxy:
    """Forwards TCP connections on loopback to ``port``. :meth:`cut` stops forwarding in both
    directions without closing anything, as a network partition does (the peers hear silence,
    not a reset); :meth:`heal` lets what was held through. Counts the bytes sent upstream and
    when the last of them arrived (a client's last request)."""

    def __init__(self, port: int) -> None:
        self.target = ("127.0.0.1", port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = False
        self._lock = threading.Lock()
        self.upstream_bytes = 0
        self.last_upstream = 0.0  # time.monotonic() of the last byte sent upstream
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        self._flowing.clear()

    def heal(self) -> None:
        self._flowing.set()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, up: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if up:  # counted when the client sent it, whether or not it gets through
                    with self._lock:
                        self.upstream_bytes += len(data)
                        self.last_upstream = time.monotonic()
                self._flowing.wait()
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        self._flowing.set()
        self._listener.close()
        with self._lock:
            for end in self._sockets:
                end.close()
