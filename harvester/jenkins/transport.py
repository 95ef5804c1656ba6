"""python-jenkins' HTTP session, on ``http.client`` instead of requests' adapters and urllib3.

python-jenkins sends every request through three methods of its session: ``prepare_request``,
``merge_environment_settings`` and ``send`` (``Jenkins._request``, checked in 1.8). requests spends
about 0.45 ms of CPU on each GET here (hooks, cookies, adapters, urllib3's locked pool, and ~8
``isinstance`` checks against typing Protocols); the GET itself over ``http.client`` costs about
0.12 ms, and does not get dearer with 8 threads asking at once (bench/RESULTS.md, issue 14).
:class:`HttpSession` is those three methods over harvester.util.http1's keep-alive pool, and
answers with real ``requests.Response`` objects, so python-jenkins (``raise_for_status``, its
401/403/404/500 mapping, timeouts) works unchanged.

What the requests session did and this one does the same way:

* Proxies from the environment (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``), read
  once with requests' own functions: absolute-form requests through an ``http://`` proxy, a CONNECT
  tunnel for ``https://`` Jenkins; credentials in the proxy URL become ``Proxy-Authorization``.
* TLS verified against the system store, a CA bundle (``jenkins.verify_tls`` a path), or not at all.
* Retries of GETs (:class:`RetryPolicy`, urllib3's schedule): on 429 and 5xx answers and on network
  errors, with exponential backoff, ``Retry-After`` honoured but capped; the last answer is handed
  back when they run out. A keep-alive connection the server closed meanwhile is replaced
  without counting (the request never reached Jenkins; util/http1.py).
* Gzip or deflate bodies are decoded. None is asked for: Jenkins sits beside the harvester, and
  compressing costs the controller CPU.

Redirects are never followed (the caller refuses them).
"""

from __future__ import annotations

import base64
import http.client
import logging
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
from requests.structures import CaseInsensitiveDict
from requests.utils import get_environ_proxies, select_proxy

from harvester import __version__
from harvester.errors import JenkinsUnreachable
from harvester.util.http1 import Answer, Pool, Tunnel, decoded
from harvester.util.timeparse import retry_after_seconds

log = logging.getLogger(__name__)

RETRY_AFTER_CAP_SECONDS = 30.0
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_AFTER_STATUSES = frozenset({413, 429, 503})  # urllib3's: where Retry-After is honoured


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a GET: ``total`` retries after the first attempt; the
    n-th consecutive failure waits ``backoff_factor * 2 ** (n - 1)`` seconds (none after the first),
    at most ``backoff_max``: urllib3 2's schedule, which the requests session used."""

    total: int = 3
    backoff_factor: float = 0.5
    backoff_max: float = 10.0

    def backoff(self, failures: int) -> float:
        if failures <= 1:
            return 0.0
        return float(min(self.backoff_max, self.backoff_factor * 2 ** (failures - 1)))


class HttpSession:
    """What python-jenkins needs of a requests session, for GETs to one controller."""

    def __init__(
        self,
        base_url: str,
        *,
        username: str,
        api_token: str,
        timeout: float,
        verify_tls: bool | Path = True,
        retry: RetryPolicy | None = None,
        pool_size: int = 8,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url}")
        https = parts.scheme == "https"
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._retry = retry or RetryPolicy()
        self._pool = Pool(
            parts.hostname,
            parts.port or (443 if https else 80),
            timeout=timeout,
            context=_tls_context(verify_tls, parts.hostname) if https else None,
            proxy=_proxy_for(base_url),
            size=pool_size,
        )
        credentials = base64.b64encode(f"{username}:{api_token}".encode()).decode("ascii")
        self._headers = {
            "Accept": "application/json",
            "User-Agent": f"harvester/{__version__} (python-jenkins)",
            **(extra_headers or {}),
            "Authorization": f"Basic {credentials}",
        }
        # python-jenkins sets these on the session; nothing here reads them.
        self.auth: Any = None
        self.verify: Any = verify_tls

    # -- the three methods python-jenkins calls -------------------------------------------------

    def prepare_request(self, request: requests.Request) -> requests.Request:
        return request

    def merge_environment_settings(self, *_: Any, **__: Any) -> dict[str, Any]:
        return {}  # resolved once, in __init__

    def send(self, request: requests.Request, **_: Any) -> requests.Response:
        url = str(request.url)
        if not url.startswith(self._origin):
            raise ValueError(f"{url} is not on {self._origin}")  # our URLs all are
        target = url if self._pool.absolute_form else url[len(self._origin) :] or "/"
        headers = self._headers | dict(request.headers or {})
        failures = 0
        while True:
            try:
                answer = self._pool.exchange(str(request.method), target, headers)
            except (OSError, http.client.HTTPException) as exc:
                failures += 1
                # A certificate that cannot be verified stays so: no retry.
                if failures > self._retry.total or isinstance(exc, ssl.SSLError):
                    raise _requests_error(exc, url) from None
                time.sleep(self._retry.backoff(failures))
                continue
            if answer.status in RETRIED_STATUSES and failures < self._retry.total:
                failures += 1
                asked = None
                if answer.status in RETRY_AFTER_STATUSES:
                    asked = retry_after_seconds(
                        answer.header("Retry-After"), RETRY_AFTER_CAP_SECONDS
                    )
                time.sleep(asked if asked is not None else self._retry.backoff(failures))
                continue
            return _response(url, answer)

    def close(self) -> None:
        self._pool.close()


def _proxy_for(url: str) -> Tunnel | None:
    """The proxy the environment names for ``url`` (NO_PROXY honoured), as requests reads it."""
    chosen = select_proxy(url, get_environ_proxies(url))
    if not chosen:
        return None
    parts = urlsplit(chosen if "://" in chosen else f"http://{chosen}")
    if parts.scheme != "http" or not parts.hostname:
        raise JenkinsUnreachable(
            f"the proxy {parts.scheme}://{parts.hostname}:{parts.port or ''} the environment names "
            "for Jenkins is not an http:// proxy, the only kind supported",
            url=url.split("?", 1)[0],
            hint="set HTTP_PROXY/HTTPS_PROXY to an http:// proxy, or add Jenkins' host to NO_PROXY",
        )
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    return Tunnel(parts.hostname, parts.port or 80, authorization)


def _tls_context(verify_tls: bool | Path, host: str) -> ssl.SSLContext:
    if verify_tls is False:
        log.warning(
            "Unverified HTTPS to %s: jenkins.verify_tls is false, Jenkins' certificate is not "
            "checked (set it to the CA bundle's path instead)",
            host,
        )
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if isinstance(verify_tls, Path):
        return ssl.create_default_context(cafile=str(verify_tls))
    return ssl.create_default_context()


def _response(url: str, answer: Answer) -> requests.Response:
    response = requests.Response()
    response.status_code = answer.status
    response.reason = answer.reason
    headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
    for name, value in answer.headers:
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    response.headers = headers
    response.url = url
    response._content = decoded(answer)
    return response


def _requests_error(exc: BaseException, url: str) -> requests.RequestException:
    """The requests exception python-jenkins and the client expect for a failure to get an
    answer, with the cause's text (``[Errno 111] Connection refused``) in its message."""
    shown = url.split("?", 1)[0]
    if isinstance(exc, ssl.SSLError):
        return requests.exceptions.SSLError(f"{exc} ({shown})")
    if isinstance(exc, TimeoutError):
        return requests.exceptions.ReadTimeout(f"timed out ({shown})")
    return requests.ConnectionError(f"{exc.__class__.__name__}: {exc} ({shown})")
