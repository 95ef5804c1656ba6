"""Keep-alive HTTP/1.1 connections to one server on ``http.client``: what carries both the Jenkins
GETs (under python-jenkins) and the webhook POSTs (under httpx).

Why not requests' or httpx's own pools: per request they cost 3 to 4 times the CPU of the request
itself, and their locked pools get dearer when 8 threads ask at once (bench/RESULTS.md, issue 14).
This pool takes and returns connections with ``deque.pop``/``append``, atomic under the GIL.

A server may close an idle keep-alive connection at any moment. Before reusing one that has been
idle for more than a moment it is checked (readable with nothing asked means closed, as urllib3
and httpcore check; a poll per request would cost a system call, so connections idle for less
than IDLE_CHECK_SECONDS skip it: servers close idle connections after seconds). When an
idempotent request still finds it closed before any answer, it goes again once on a fresh
connection: the request never reached the server, so no retry is spent.
"""

from __future__ import annotations

import http.client
import select
import ssl
import time
import zlib
from collections import deque
from dataclasses import dataclass
from typing import Any

MAX_LINE = 65536  # http.client's own limits on a header line and on the header count
MAX_FIELDS = 100


class _Response(http.client.HTTPResponse):
    """http.client's response, with the header block read here instead of by the ``email``
    package: ``http.client.parse_headers`` costs 18 µs a response alone, half the Python of a
    keep-alive request, and every Jenkins GET and webhook POST has one (issue 14). What follows
    the headers (lengths, chunked bodies, keep-alive) is http.client's own, as in its begin()."""

    def begin(self) -> None:
        if self.headers is not None:
            return
        while True:
            version, status, reason = self._read_status()
            fields = _read_fields(self.fp)
            if status != http.client.CONTINUE:
                break
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        message = http.client.HTTPMessage()
        for name, value in fields:
            message[name] = value  # appended: a repeated field keeps every value
        self.headers = self.msg = message
        encoding = message.get("transfer-encoding")
        self.chunked = bool(encoding and encoding.lower() == "chunked")
        self.chunk_left = None
        self.will_close = self._check_close()
        self.length = None
        length = message.get("content-length")
        if length and not self.chunked:
            try:
                self.length = int(length)
            except ValueError:
                self.length = None
            else:
                if self.length < 0:
                    self.length = None
        if status in (204, 304) or 100 <= status < 200 or self._method == "HEAD":
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True


def _read_fields(fp: Any) -> list[tuple[str, str]]:
    """The header fields up to the blank line, as (name, value); a continuation line (obsolete
    folding) joins the field before it."""
    fields: list[tuple[str, str]] = []
    while True:
        line = fp.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise http.client.LineTooLong("header line")
        if line in (b"\r\n", b"\n", b""):
            return fields
        if len(fields) >= MAX_FIELDS:
            raise http.client.HTTPException(f"got more than {MAX_FIELDS} headers")
        text = line.decode("iso-8859-1")
        if text[0] in " \t" and fields:
            name, value = fields[-1]
            fields[-1] = (name, f"{value} {text.strip()}")
            continue
        name, _, value = text.partition(":")
        fields.append((name.strip(), value.strip()))


class _Connection(http.client.HTTPConnection):
    response_class = _Response


class _TlsConnection(http.client.HTTPSConnection):
    response_class = _Response


# On a reused connection, before any answer: the server had closed it.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
IDLE_CHECK_SECONDS = 0.5


@dataclass(frozen=True)
class Tunnel:
    """Reach the server through an HTTP proxy: ``host:port`` of the proxy, and its
    ``Proxy-Authorization`` value if it wants one."""

    host: str
    port: int
    authorization: str | None = None


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes  # as sent: see decoded()

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        values = [value for key, value in self.headers if key.lower() == wanted]
        return ", ".join(values) if values else None


class Pool:
    """Up to ``size`` idle keep-alive connections to ``host:port`` (TLS with ``context``),
    directly or through ``proxy``: absolute-form requests for plain HTTP, a CONNECT tunnel for
    HTTPS. Thread-safe."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float,
        context: ssl.SSLContext | None = None,
        proxy: Tunnel | None = None,
        size: int = 8,
    ) -> None:
        self.host, self.port = host, port
        self.timeout = timeout
        self.context = context
        self.proxy = proxy
        self.size = max(size, 1)
        self._idle: deque[tuple[http.client.HTTPConnection, float]] = deque()

    @property
    def absolute_form(self) -> bool:
        """Requests name the whole URL (plain HTTP through a proxy), not just the path."""
        return self.proxy is not None and self.context is None

    def exchange(
        self, method: str, target: str, headers: dict[str, str], body: bytes | None = None
    ) -> Answer:
        """One request and its whole answer. Raises OSError (``ssl.SSLError``, ``TimeoutError``
        among them) or ``http.client.HTTPException`` when there is none."""
        if self.absolute_form and self.proxy is not None and self.proxy.authorization:
            headers = headers | {"Proxy-Authorization": self.proxy.authorization}
        while True:
            connection, reused = self._take()
            try:
                connection.request(method, target, body=body, headers=headers)
                answer = connection.getresponse()
                content = answer.read()
            except _STALE:
                connection.close()
                if reused and method in IDEMPOTENT:
                    continue
                raise
            except BaseException:
                connection.close()
                raise
            fields = answer.getheaders()
            if answer.will_close or len(self._idle) >= self.size:
                connection.close()
            else:
                self._idle.append((connection, time.monotonic()))
            return Answer(answer.status, answer.reason, fields, content)

    def close(self) -> None:
        while self._idle:
            self._idle.pop()[0].close()

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        while True:
            try:
                connection, since = self._idle.pop()
            except IndexError:
                return self._new(), False
            if time.monotonic() - since < IDLE_CHECK_SECONDS or not _dropped(connection):
                return connection, True
            connection.close()

    def _new(self) -> http.client.HTTPConnection:
        proxy = self.proxy
        host, port = (proxy.host, proxy.port) if proxy else (self.host, self.port)
        if self.context is None:
            return _Connection(host, port, timeout=self.timeout)
        connection = _TlsConnection(host, port, timeout=self.timeout, context=self.context)
        if proxy:
            tunnel = {"Proxy-Authorization": proxy.authorization} if proxy.authorization else None
            connection.set_tunnel(self.host, self.port, headers=tunnel)
        return connection


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """An idle connection is readable only if the server closed it (or broke the protocol)."""
    sock = connection.sock
    if sock is None:
        return True
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


def decoded(answer: Answer) -> bytes:
    """The body, uncompressed when the server sent it gzip- or deflate-encoded."""
    encoding = (answer.header("Content-Encoding") or "").strip().lower()
    if encoding == "gzip":
        return zlib.decompress(answer.body, 16 + zlib.MAX_WBITS)
    if encoding != "deflate":
        return answer.body
    try:
        return zlib.decompress(answer.body)
    except zlib.error:
        return zlib.decompress(answer.body, -zlib.MAX_WBITS)  # raw deflate, as some servers send
