"""The SEI webhook on httpx: the only module that imports ``httpx`` (and stamina, for its retries).

One POST per build, the stored payload as a flat JSON body, ``Authorization: <auth_scheme> <token>``.
2xx is delivered. 408, 429, 5xx and network errors are retried (``Retry-After`` honoured, capped);
401/403 mean the credentials are wrong for every build; any other 4xx means this payload will never be
accepted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

import httpx
import stamina

from harvester import __version__
from harvester.attempt import Attempt
from harvester.errors import (
    WebhookCredentialsRejected,
    WebhookRejected,
    WebhookTransientError,
)

RETRY_AFTER_CAP_SECONDS = 30.0
BODY_EXCERPT_BYTES = 500
RETRIED_STATUSES = frozenset({408, 429})


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    return max(0.0, min(seconds, RETRY_AFTER_CAP_SECONDS))


def _excerpt(response: httpx.Response) -> str:
    return response.content[:BODY_EXCERPT_BYTES].decode("utf-8", errors="replace")


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
        self._client = httpx.Client(
            timeout=timeout,
            follow_redirects=False,
            limits=httpx.Limits(
                max_connections=max_concurrency, max_keepalive_connections=max_concurrency
            ),
            headers={
                "Authorization": f"{auth_scheme} {token}",
                "Content-Type": "application/json",
                "User-Agent": f"harvester/{__version__}",
            },
        )

    def close(self) -> None:
        self._client.close()

    def post_once(self, body: str) -> Attempt:
        """One POST; raises WebhookTransientError (retry), WebhookRejected (dead) or
        WebhookCredentialsRejected (stop), each carrying what the history records."""
        started = time.perf_counter()
        try:
            response = self._client.post(self.url, content=body.encode("utf-8"))
        except httpx.TimeoutException as exc:
            raise WebhookTransientError(
                f"the webhook did not answer in time ({exc.__class__.__name__})", url=self.url
            ) from None
        except httpx.TransportError as exc:
            raise WebhookTransientError(
                f"cannot reach the webhook ({exc.__class__.__name__}: {exc})", url=self.url
            ) from None
        status = response.status_code
        if 200 <= status < 300:
            return Attempt("sent", status, None, _ms_since(started))
        if status in (401, 403):
            raise WebhookCredentialsRejected(
                "the webhook rejected the credentials",
                url=self.url,
                status=status,
                hint="check sei.token and sei.auth_scheme (Harness SEI uses ApiKey); "
                "builds stay pending and are sent once it accepts them",
            )
        if status in RETRIED_STATUSES or status >= 500:
            raise WebhookTransientError(
                f"the webhook answered HTTP {status}",
                url=self.url,
                status=status,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
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
        on_attempt: Callable[[Attempt], None],
        wait_initial: float = 0.2,
        wait_max: float = 5.0,
    ) -> Attempt:
        """Up to ``attempts`` POSTs with stamina's exponential backoff (or the receiver's
        ``Retry-After``). Every attempt, failed or not, is reported to ``on_attempt``; the last
        result is returned. WebhookCredentialsRejected propagates: it concerns every build."""
        last: Attempt | None = None

        def backoff(exc: Exception) -> bool | float:
            if isinstance(exc, WebhookTransientError):
                return exc.retry_after if exc.retry_after is not None else True
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
                    started = time.perf_counter()
                    try:
                        last = self.post_once(body)
                    except WebhookTransientError as exc:
                        last = Attempt("retry", exc.status, str(exc), _ms_since(started))
                        on_attempt(last)
                        raise
                    except WebhookRejected as exc:
                        last = Attempt("dead", exc.status, str(exc), _ms_since(started))
                        on_attempt(last)
                        return last
                    except WebhookCredentialsRejected as exc:
                        on_attempt(Attempt("credentials", exc.status, str(exc), _ms_since(started)))
                        raise
                    on_attempt(last)
                    return last
        except WebhookTransientError:
            assert last is not None
            return last
        raise AssertionError("unreachable: stamina ran no attempt")  # pragma: no cover

    def reachable(self) -> str:
        """For ``check``: can we open a connection to the webhook's host? Nothing is POSTed."""
        url = httpx.URL(self.url)
        origin = f"{url.scheme}://{url.netloc.decode('ascii')}/"
        # Reachability only: the credentials stay out of it (they are for the webhook path).
        request = self._client.build_request("HEAD", origin)
        del request.headers["Authorization"]
        try:
            response = self._client.send(request)
        except httpx.TransportError as exc:
            raise WebhookTransientError(
                f"cannot reach the webhook host ({exc.__class__.__name__}: {exc})",
                url=origin,
                hint="check sei.url and that this host can reach it",
            ) from None
        return f"HTTP {response.status_code} from {origin}"


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
