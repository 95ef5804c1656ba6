"""The keep-alive pool's reading of answers (harvester.util.http1 reads the header block itself,
http.client the rest): framing a BaseHTTPRequestHandler would not produce, written byte for byte
by a raw server on loopback."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from harvester.util.http1 import MAX_FIELDS, Pool


class RawServer:
    """Answers each request on a connection with the next of ``answers`` (raw bytes); closes the
    connection after the answers in ``close_after``."""

    def __init__(self, answers: list[bytes], close_after: frozenset[int] = frozenset()) -> None:
        self.answers = list(answers)
        self.close_after = close_after
        self.connections = 0
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        served = 0
        while served < len(self.answers):
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self.connections += 1
            with connection:
                while served < len(self.answers):
                    request = b""
                    while b"\r\n\r\n" not in request:
                        chunk = connection.recv(65536)
                        if not chunk:
                            break
                        request += chunk
                    if not request:
                        break
                    connection.sendall(self.answers[served])
                    served += 1
                    if served - 1 in self.close_after:
                        break

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._socket.close()
        self._thread.join(5)


MakePool = Callable[[int], Pool]


@pytest.fixture
def pool() -> Iterator[MakePool]:
    made: list[Pool] = []

    def make(port: int) -> Pool:
        made.append(Pool("127.0.0.1", port, timeout=5))
        return made[-1]

    yield make
    for each in made:
        each.close()


def test_chunked_repeated_and_folded_fields_after_a_100_continue(pool: MakePool) -> None:
    answer = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: application/json\r\n"
        b"X-Seen: a\r\n"
        b"Transfer-Encoding: chunked\r\n"
        b"X-Folded: one\r\n"
        b"\t two\r\n"
        b"X-Seen: b\r\n"
        b"\r\n"
        b"5\r\n[1, 2\r\n"
        b"3\r\n, 3\r\n"
        b"1;ext=1\r\n]\r\n"
        b"0\r\n\r\n"
    )
    then = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    with RawServer([answer, then]) as server:
        connections = pool(server.port)
        first = connections.exchange("GET", "/a", {})
        second = connections.exchange("GET", "/b", {})
    assert (first.status, first.reason, first.body) == (200, "OK", b"[1, 2, 3]")
    assert first.header("x-seen") == "a, b"  # every value, in order
    assert first.header("X-Folded") == "one two"
    assert first.header("content-type") == "application/json"
    assert (second.status, second.body) == (200, b"{}")
    assert server.connections == 1  # the chunked answer was read to its end: kept alive


def test_an_http10_answer_without_keep_alive_closes_its_connection(pool: MakePool) -> None:
    answers = [b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx"] * 2
    with RawServer(answers, close_after=frozenset({0})) as server:
        connections = pool(server.port)
        assert [connections.exchange("GET", "/", {}).body for _ in range(2)] == [b"x", b"x"]
    assert server.connections == 2


def test_an_answer_with_no_length_is_read_to_the_close(pool: MakePool) -> None:
    with RawServer([b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it"]) as server:
        assert pool(server.port).exchange("GET", "/", {}).body == b"all of it"


def test_too_many_header_fields_is_an_error(pool: MakePool) -> None:
    fields = b"".join(b"X-%d: y\r\n" % n for n in range(MAX_FIELDS + 1))
    with (
        RawServer([b"HTTP/1.1 200 OK\r\n" + fields + b"Content-Length: 0\r\n\r\n"]) as server,
        pytest.raises(http.client.HTTPException, match="more than 100 headers"),
    ):
        pool(server.port).exchange("GET", "/", {})
