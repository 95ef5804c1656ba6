"""The SEI webhook on httpx: the only module that imports ``httpx`` (and stamina, for its retries).

One POST per build, the payload as a flat JSON body, ``Authorization: <auth_scheme> <token>``.
How each answer is treated is the table, decided in :meth:`WebhookClient.post_once`:
2xx delivered; 429 throttled (every worker pauses, never an attempt); 408, 5xx and network errors
retried; 401/403 wrong credentials and a redirect, 404 or 405 a wrong ``sei.url`` (both stop the
cycle, rows stay pending); any other 4xx means this payload will never be accepted.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

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
from harvester.sei import plugin
from harvester.util.timeparse import retry_after_seconds

# A receiver asking for more than an hour is misconfigured; an hour is as long as we honour.
RETRY_AFTER_CAP_SECONDS = 3600.0
BODY_EXCERPT_BYTES = 500
WRONG_URL_STATUSES = frozenset({404, 405})
CICD_PATH_SUFFIX = "/v1/custom-cicd"
PLUGIN_PATH = "/v1/generic-requests/multipart"

log = logging.getLogger(__name__)

AttemptHook = Callable[[Attempt], None]
Admit = Callable[[], bool]
"""Called before each POST; False means "do not send" (stopped, or delivery paused)."""
Throttled = Callable[[float | None], None]
"""Called on a 429 with its Retry-After (seconds, or None): the caller pauses every worker."""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header, at most RETRY_AFTER_CAP_SECONDS."""
    return retry_after_seconds(value, RETRY_AFTER_CAP_SECONDS, now)


DRAIN_BYTES = 64 * 1024
"""Of an answer's body we do not need, read at most this much (a receiver's 202 body is a few
bytes; read whole, the connection is kept alive for the next POST)."""


Part = tuple[str, str, bytes, str]
"""A part of a multipart request: its field, its filename, its content and its Content-Type."""


@dataclass(frozen=True, slots=True)
class Request:
    """What to POST: a JSON body, or (the plugin channel) the parts of a multipart form, which
    httpx encodes."""

    body: bytes = b""
    parts: tuple[Part, ...] = ()


@dataclass(frozen=True)
class Answer:
    """What the harvester keeps of an answer: the status, the headers, an excerpt of the body."""

    status: int
    headers: httpx.Headers
    excerpt: str


def _read_some(response: httpx.Response, limit: int, timeout: float, *, decoded: bool) -> bytes:
    """At most ``limit`` bytes of the body, within ``timeout``: the excerpt a rejection records
    (``decoded``), or a body nobody needs, read raw so that its connection can be used again
    (leaving the stream unread closes it instead). What cannot be read is left unread."""
    got, deadline = b"", time.monotonic() + timeout
    try:
        for chunk in response.iter_bytes() if decoded else response.iter_raw():
            got += chunk
            if len(got) >= limit or time.monotonic() > deadline:
                break
    except httpx.DecodingError:
        return b"(a body that cannot be decompressed)"
    except httpx.TransportError:
        pass  # what arrived is all there is; the status line and headers said the rest
    return got[:limit]


def api_base(url: str) -> str | None:
    """The SEI API base of a webhook URL (``sei.url`` without ``/v1/custom-cicd``), or None when
    it does not end so (a compatible receiver elsewhere)."""
    trimmed = url.rstrip("/")
    return trimmed.removesuffix(CICD_PATH_SUFFIX) if trimmed.endswith(CICD_PATH_SUFFIX) else None


def plugin_url(url: str) -> str:
    """The plugin channel's endpoint: ``<base>/v1/generic-requests/multipart``."""
    return (api_base(url) or url.rstrip("/")) + PLUGIN_PATH


class WebhookClient:
    """A keep-alive httpx client shared by the delivery threads (httpx.Client is thread-safe):
    at most ``max_concurrency`` connections, timeouts on every request, TLS verified, proxies
    from the environment as httpx reads them."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        auth_scheme: str = "Bearer",
        timeout: float = 30.0,
        max_concurrency: int = 4,
        channel: str = "webhook",
    ) -> None:
        # The plugin channel: the SEI Jenkins plugin's multipart request, to its own endpoint.
        self.channel = channel
        self.url = plugin_url(url) if channel == "plugin" else url
        self._timeout = timeout
        self._client = httpx.Client(
            timeout=timeout,
            follow_redirects=False,
            limits=httpx.Limits(
                max_connections=max_concurrency + 1, max_keepalive_connections=max_concurrency
            ),
            headers={
                "Authorization": f"{auth_scheme} {token}",
                "Accept": "application/json",
                "User-Agent": f"harvester/{__version__}",
            },
        )

    def request(
        self, payload: str, files: bytes | None = None, summary: str | None = None
    ) -> Request:
        """What to POST for a stored payload (and, on the plugin channel, the zip stored with it
        and what the zip holds): the JSON itself, or the plugin's multipart request."""
        if self.channel != "plugin":
            return Request(payload.encode("utf-8"))
        data = json.loads(payload)
        held = json.loads(summary) if summary else {}
        logs = {str(entry["node"]): str(entry["name"]) for entry in held.get("logs", [])}
        parts: list[Part] = [("json", "json", plugin.json_part(data, logs), "application/json")]
        if files is not None:  # SEI drops a part without a filename: both have one
            name = f"complete-data-temp-{data['build_number']}.zip"
            parts.append(("file", name, files, "application/zip"))
        return Request(parts=tuple(parts))

    def close(self) -> None:
        self._client.close()

    def _post(self, request: Request) -> Answer:
        started = time.perf_counter()
        try:
            answer = self._exchange("POST", self.url, request)
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
                answer.status,
                took,
                extra={"method": "POST", "status": answer.status, "ms": round(took)},
            )
        return answer

    def _exchange(self, method: str, url: str, request: Request | None = None) -> Answer:
        """One request. What it means is decided from the status line and headers; of the body,
        only the excerpt a rejection records is read (decoded), within the timeout; the rest is
        drained up to DRAIN_BYTES so the connection can be used again, or dropped."""
        if request is None:
            streamed = self._client.stream(method, url)
        elif request.parts:
            files = {field: (name, data, kind) for field, name, data, kind in request.parts}
            streamed = self._client.stream(method, url, files=files)
        else:
            json_type = {"Content-Type": "application/json"}
            streamed = self._client.stream(method, url, content=request.body, headers=json_type)
        with streamed as response:
            rejected = response.status_code >= 400
            limit = BODY_EXCERPT_BYTES if rejected else DRAIN_BYTES
            read = _read_some(response, limit, self._timeout, decoded=rejected)
            excerpt = read.decode("utf-8", errors="replace") if rejected else ""
            return Answer(response.status_code, response.headers, excerpt)

    def _refusal(self, response: Answer) -> Exception | None:
        """The error for an answer that concerns every build (credentials, URL), else None."""
        status = response.status
        if status == 403 and self.channel == "plugin":
            return WebhookCredentialsRejected(
                "the plugin channel refused the API key (HTTP 403)",
                url=self.url,
                status=status,
                hint="sei.channel: plugin needs an API key with the Admin role in sei.token; "
                "builds stay pending and are sent once it is accepted",
            )
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
                hint="check sei.url (for Harness SEI it ends in /v1/custom-cicd"
                + (
                    "; the plugin channel posts to <its base>/v1/generic-requests/multipart"
                    if self.channel == "plugin"
                    else ""
                )
                + "); builds stay pending and are sent once it is right",
            )
        return None

    def post_once(self, body: str | Request) -> Attempt:
        """One POST; returns a ``sent`` Attempt or raises WebhookThrottled (429),
        WebhookTransientError (retry), WebhookRejected (dead), WebhookCredentialsRejected or
        WebhookUrlRejected (stop the cycle), each carrying what the history records."""
        started = time.perf_counter()
        response = self._post(Request(body.encode("utf-8")) if isinstance(body, str) else body)
        status = response.status
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
            f"the webhook rejected the payload: HTTP {status}: {response.excerpt}",
            url=self.url,
            status=status,
        )

    def deliver(
        self,
        body: str | Request,
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

    # -- check ---------------------------------------------------------------------

    def probe_empty(self) -> int:
        """POST ``{}`` with the configured credentials: the receiver validates required fields
        before storing anything, so a 400 proves the URL and the credentials. Returns the status;
        raises for what concerns the configuration (credentials, URL, unreachable)."""
        if self.channel == "plugin":
            # A request type the receiver does not know: it answers 400 before storing anything.
            probe = json.dumps({"request_type": "HarvesterCheck", "payload": "{}"}).encode()
            response = self._post(Request(parts=(("json", "json", probe, "application/json"),)))
        else:
            response = self._post(Request(b"{}"))
        refusal = self._refusal(response)
        if refusal is not None:
            raise refusal
        return response.status

    def instance_status(self, instance_guid: str) -> int | None:
        """``GET <base>/v1/cicd/instances/<guid>``: 200 when SEI knows the instance, 404 when it
        does not (it would answer 202 for its builds and drop them). None when ``sei.url`` is not
        an SEI URL (no ``/v1/custom-cicd`` to strip)."""
        base = api_base(self.url)
        if base is None:
            return None
        url = f"{base}/v1/cicd/instances/{instance_guid}"
        try:
            return self._exchange("GET", url).status
        except httpx.TransportError as exc:
            raise WebhookTransientError(
                f"cannot reach SEI ({exc.__class__.__name__}: {exc})", url=url
            ) from None


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
