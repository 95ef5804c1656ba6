"""The SEI webhook on httpx: the only module that imports ``httpx`` (and stamina, for its retries).

One POST per build, the payload as a flat JSON body, ``Authorization: <auth_scheme> <token>``.
How each answer is treated is CONTRACT §4's table, decided in :meth:`WebhookClient.post_once`:
2xx delivered; 429 throttled (every worker pauses, never an attempt); 408, 5xx and network errors
retried; 401/403 wrong credentials and a redirect, 404 or 405 a wrong ``sei.url`` (both stop the
cycle, rows stay pending); any other 4xx means this payload will never be accepted.
"""

from __future__ import annotations

import http.client
import logging
import time
import urllib.request
from collections.abc import Callable

import httpx
import stamina

from harvester import __version__
from harvester.attempt import Attempt, Outcome
from harvester.errors import (
    WebhookCredentialsRejected,
    WebhookRejected,
    WebhookThrottled,
    WebhookTransientError,
    WebhookUrlRejected,
)
from harvester.util.http1 import Pool
from harvester.util.timeparse import retry_after_seconds

# A receiver asking for more than an hour is misconfigured; an hour is as long as we honour.
RETRY_AFTER_CAP_SECONDS = 3600.0
BODY_EXCERPT_BYTES = 500
WRONG_URL_STATUSES = frozenset({404, 405})
CICD_PATH_SUFFIX = "/v1/custom-cicd"

log = logging.getLogger(__name__)

AttemptHook = Callable[[Attempt], None]
Admit = Callable[[], bool]
"""Called before each POST; False means "do not send" (stopped, or delivery paused)."""
Throttled = Callable[[float | None], None]
"""Called on a 429 with its Retry-After (seconds, or None): the caller pauses every worker."""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header, at most RETRY_AFTER_CAP_SECONDS."""
    return retry_after_seconds(value, RETRY_AFTER_CAP_SECONDS, now)


def _excerpt(response: httpx.Response) -> str:
    return response.content[:BODY_EXCERPT_BYTES].decode("utf-8", errors="replace")


def api_base(url: str) -> str | None:
    """The SEI API base of a webhook URL (``sei.url`` without ``/v1/custom-cicd``), or None when
    it does not end so (a compatible receiver elsewhere)."""
    trimmed = url.rstrip("/")
    return trimmed.removesuffix(CICD_PATH_SUFFIX) if trimmed.endswith(CICD_PATH_SUFFIX) else None


class Http1Transport(httpx.BaseTransport):
    """httpx's transport interface on harvester.util.http1's keep-alive pool instead of httpcore:
    a POST costs about 0.25 ms of CPU instead of 0.4 with 4 threads sending at once (bench/
    RESULTS.md, issue 14). TLS is httpx's own default context (certifi, SSL_CERT_FILE and
    SSL_CERT_DIR). A POST is never re-sent on another connection: a connection idle long enough
    to have been closed is checked before it is used, and any other failure is the caller's to
    retry (CONTRACT §4)."""

    def __init__(self, url: str, *, timeout: float, size: int) -> None:
        parsed = httpx.URL(url)
        https = parsed.scheme == "https"
        self._origin = (parsed.scheme, parsed.host, parsed.port)
        self._pool = Pool(
            parsed.host,
            parsed.port or (443 if https else 80),
            timeout=timeout,
            context=httpx.create_ssl_context() if https else None,
            size=size,
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if (url.scheme, url.host, url.port) != self._origin:
            raise httpx.UnsupportedProtocol(f"{url} is not on the webhook's host", request=request)
        try:
            answer = self._pool.exchange(
                request.method,
                request.url.raw_path.decode("ascii"),
                dict(request.headers.multi_items()),
                request.read(),
            )
        except TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from exc
        except http.client.HTTPException as exc:
            raise httpx.RemoteProtocolError(
                str(exc) or type(exc).__name__, request=request
            ) from exc
        except OSError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        return httpx.Response(answer.status, headers=answer.headers, content=answer.body)

    def close(self) -> None:
        self._pool.close()


def proxied(url: str) -> bool:
    """Whether the environment names a proxy for ``url`` (HTTP(S)_PROXY, ALL_PROXY, NO_PROXY),
    as httpx reads them: then httpx's own transport carries the POSTs, through it."""
    proxies = urllib.request.getproxies_environment()
    scheme = httpx.URL(url).scheme
    if not (proxies.get(scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(httpx.URL(url).host)  # NO_PROXY, as on Linux


class WebhookClient:
    """A keep-alive httpx client shared by the delivery threads (httpx.Client is thread-safe)."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        auth_scheme: str = "Bearer",
        timeout: float = 30.0,
        max_concurrency: int = 4,
    ) -> None:
        self.url = url
        headers = {
            "Authorization": f"{auth_scheme} {token}",
            "Content-Type": "application/json",
            "User-Agent": f"harvester/{__version__}",
        }
        # The POSTs skip httpx.Client's machinery (auth flows, cookies, redirects, hooks: a third
        # of a POST's CPU) and go straight to the transport, with the headers the client would
        # send. Through a proxy (the environment names one) httpx's own client does it all.
        self._direct = (
            None if proxied(url) else Http1Transport(url, timeout=timeout, size=max_concurrency)
        )
        self._client = httpx.Client(
            timeout=timeout,
            transport=self._direct,
            follow_redirects=False,
            limits=httpx.Limits(
                max_connections=max_concurrency + 1, max_keepalive_connections=max_concurrency
            ),
            headers=headers,
        )
        self._url = httpx.URL(url)
        self._headers = self._client.headers.copy()

    def close(self) -> None:
        self._client.close()

    def _post(self, body: bytes) -> httpx.Response:
        started = time.perf_counter()
        try:
            if self._direct is None:
                response = self._client.post(self.url, content=body)
            else:
                request = httpx.Request("POST", self._url, content=body, headers=self._headers)
                response = self._direct.handle_request(request)
        except httpx.TimeoutException as exc:
            raise WebhookTransientError(
                f"the webhook did not answer in time ({exc.__class__.__name__})", url=self.url
            ) from None
        except httpx.TransportError as exc:
            raise WebhookTransientError(
                f"cannot reach the webhook ({exc.__class__.__name__}: {exc})", url=self.url
            ) from None
        if log.isEnabledFor(logging.DEBUG):
            took = (time.perf_counter() - started) * 1000
            log.debug(
                "POST %s -> %d in %.0f ms",
                self.url.split("?", 1)[0],
                response.status_code,
                took,
                extra={"method": "POST", "status": response.status_code, "ms": round(took)},
            )
        return response

    def _refusal(self, response: httpx.Response) -> Exception | None:
        """The error for an answer that concerns every build (credentials, URL), else None."""
        status = response.status_code
        if status in (401, 403):
            return WebhookCredentialsRejected(
                "the webhook rejected the credentials",
                url=self.url,
                status=status,
                hint="check sei.token and sei.auth_scheme (Harness SEI uses ApiKey); "
                "builds stay pending and are sent once it accepts them",
            )
        if 300 <= status < 400 or status in WRONG_URL_STATUSES:
            where = response.headers.get("Location")
            return WebhookUrlRejected(
                "the webhook URL is wrong"
                + (f" (it redirects to {where.split('?', 1)[0]})" if where else ""),
                url=self.url,
                status=status,
                hint="check sei.url (for Harness SEI it ends in /v1/custom-cicd); "
                "builds stay pending and are sent once it is right",
            )
        return None

    def post_once(self, body: str) -> Attempt:
        """One POST; returns a ``sent`` Attempt or raises WebhookThrottled (429),
        WebhookTransientError (retry), WebhookRejected (dead), WebhookCredentialsRejected or
        WebhookUrlRejected (stop the cycle), each carrying what the history records."""
        started = time.perf_counter()
        response = self._post(body.encode("utf-8"))
        status = response.status_code
        if 200 <= status < 300:
            return Attempt("sent", status, None, _ms_since(started))
        refusal = self._refusal(response)
        if refusal is not None:
            raise refusal
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if status == 429:
            raise WebhookThrottled(
                "the webhook is throttling (HTTP 429)",
                url=self.url,
                status=status,
                retry_after=retry_after,
            )
        if status == 408 or status >= 500:
            raise WebhookTransientError(
                f"the webhook answered HTTP {status}",
                url=self.url,
                status=status,
                retry_after=retry_after,
            )
        raise WebhookRejected(
            f"the webhook rejected the payload: HTTP {status}: {_excerpt(response)}",
            url=self.url,
            status=status,
        )

    def deliver(
        self,
        body: str,
        *,
        attempts: int,
        on_attempt: AttemptHook,
        admit: Admit,
        throttled: Throttled,
        wait_initial: float = 0.2,
        wait_max: float = 5.0,
    ) -> Attempt | None:
        """Up to ``attempts`` POSTs (transient failures) with stamina's exponential backoff or
        the receiver's ``Retry-After``; a 429 is not one of them: ``throttled`` pauses the
        workers and the same attempt POSTs again once ``admit`` lets it. Every answer is reported
        to ``on_attempt``; the last is returned, or None when ``admit`` refused before any POST.
        WebhookCredentialsRejected and WebhookUrlRejected propagate: they concern every build."""
        last: Attempt | None = None

        def backoff(exc: Exception) -> bool | float:
            if isinstance(exc, WebhookTransientError):
                # Capped: a stop must not wait out a long Retry-After between two attempts; the
                # row's next attempt after this cycle still honours it.
                return min(exc.retry_after, wait_max) if exc.retry_after is not None else True
            return False

        try:
            for attempt in stamina.retry_context(
                on=backoff,
                attempts=max(attempts, 1),
                timeout=None,
                wait_initial=wait_initial,
                wait_max=wait_max,
                wait_jitter=wait_initial,
            ):
                with attempt:
                    while True:
                        if not admit():
                            return last
                        started = time.perf_counter()
                        try:
                            last = self.post_once(body)
                        except WebhookThrottled as exc:
                            last = Attempt("throttled", 429, str(exc), _ms_since(started))
                            on_attempt(last)
                            throttled(exc.retry_after)
                            continue  # the same attempt, after the pause
                        except WebhookTransientError as exc:
                            last = Attempt("retry", exc.status, str(exc), _ms_since(started))
                            on_attempt(last)
                            raise
                        except WebhookRejected as exc:
                            last = Attempt("dead", exc.status, str(exc), _ms_since(started))
                            on_attempt(last)
                            return last
                        except (WebhookCredentialsRejected, WebhookUrlRejected) as exc:
                            outcome: Outcome = (
                                "url" if isinstance(exc, WebhookUrlRejected) else "credentials"
                            )
                            on_attempt(Attempt(outcome, exc.status, str(exc), _ms_since(started)))
                            raise
                        on_attempt(last)
                        return last
        except WebhookTransientError:
            return last
        raise AssertionError("unreachable: stamina ran no attempt")  # pragma: no cover

    # -- check (CONTRACT §7) ---------------------------------------------------------------------

    def probe_empty(self) -> int:
        """POST ``{}`` with the configured credentials: the receiver validates required fields
        before storing anything, so a 400 proves the URL and the credentials. Returns the status;
        raises for what concerns the configuration (credentials, URL, unreachable)."""
        response = self._post(b"{}")
        refusal = self._refusal(response)
        if refusal is not None:
            raise refusal
        return response.status_code

    def instance_status(self, instance_guid: str) -> int | None:
        """``GET <base>/v1/cicd/instances/<guid>``: 200 when SEI knows the instance, 404 when it
        does not (it would answer 202 for its builds and drop them). None when ``sei.url`` is not
        an SEI URL (no ``/v1/custom-cicd`` to strip)."""
        base = api_base(self.url)
        if base is None:
            return None
        url = f"{base}/v1/cicd/instances/{instance_guid}"
        try:
            response = self._client.get(url)
        except httpx.TransportError as exc:
            raise WebhookTransientError(
                f"cannot reach SEI ({exc.__class__.__name__}: {exc})", url=url
            ) from None
        return response.status_code


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
