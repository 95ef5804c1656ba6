"""Jenkins access on python-jenkins: the only module that imports ``jenkins``, ``requests``,
``urllib3`` and ``truststore``.

What python-jenkins gives us and what we add (each checked against its source, 1.8):

* Its ``retries=`` mounts an adapter on the URL *scheme* string, which requests never matches: it does
  nothing. We mount our own ``HTTPAdapter`` on its session, carrying urllib3's ``Retry`` for GETs:
  429, 5xx and connection errors; exponential backoff; ``Retry-After`` honoured but capped.
* It has no timeout by default: we always pass ``jenkins.timeout_seconds``.
* It fetches a crumb before the first request unless told not to: GETs need none (``add_crumb=False``).
* It maps 401/403/500 to a bare ``JenkinsException`` (the HTTP error stays in ``__context__``) and, in
  ``get_build_info``, a 503 to "does not exist". We call ``jenkins_request`` ourselves and map every
  status, so a 503 is "try again", never "the build is gone".
* Every URL is built from ``jenkins.url`` plus the job path. ``url`` fields in Jenkins' JSON carry the
  controller's configured root URL, often wrong behind a proxy: they are never followed. Redirects are
  refused for the same reason (they could lead to another host).
* Every answer is read with a size cap (after decompression) and a time cap before python-jenkins
  or we look at it (:class:`_BoundedBody`, a response hook), and parsed with a depth cap: a huge,
  endless, badly compressed or absurdly nested answer is one job's malformed answer, never a crash.

TLS is verified against the system's trust store (truststore), or ``jenkins.verify_tls``'s CA
bundle; proxies come from the environment as requests reads them (``HTTPS_PROXY``, ``NO_PROXY``).
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jenkins as python_jenkins
import requests
import truststore
import urllib3
from pydantic import ValidationError
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from harvester import __version__
from harvester.errors import (
    JenkinsError,
    JenkinsMalformedResponse,
    JenkinsNotFound,
    JenkinsTransientError,
    JenkinsUnreachable,
    NotActive,
)
from harvester.jenkins.discovery import Container, DiscoveredJob, discovery_tree, walk
from harvester.jenkins.governor import Governor
from harvester.jenkins.models import BUILD_FIELDS, BUILDS_PAGE, CAUSE_FIELDS, PipelineRun
from harvester.util import names
from harvester.util.urls import without_userinfo

log = logging.getLogger(__name__)

RETRY_AFTER_CAP_SECONDS = 30.0
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
"""Far above a 100-stage wfapi answer (about 6 MB with 100 steps each) or a discovery of 2,000
jobs (about 1 MB); jenkins.max_response_mib overrides it."""
BODY_TIME_FACTOR = 4
"""A body may take this many times jenkins.timeout_seconds in all (the timeout itself bounds each
read): a controller trickling bytes cannot hold a worker for ever."""


class _CappedRetry(Retry):
    """urllib3's Retry, with ``Retry-After`` capped: a controller asking for an hour must not stall a
    cycle; the next cycle tries again anyway."""

    def parse_retry_after(self, retry_after: str) -> float:
        return min(super().parse_retry_after(retry_after), RETRY_AFTER_CAP_SECONDS)


def retry_policy(total: int = 3, backoff_factor: float = 0.5) -> Retry:
    return _CappedRetry(
        total=total,
        connect=total,
        read=total,
        status=total,
        backoff_factor=backoff_factor,
        backoff_max=10,
        status_forcelist=RETRIED_STATUSES,
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=True,
        raise_on_status=False,  # hand the last response back; we map its status ourselves
        redirect=0,
        raise_on_redirect=False,  # a redirect is handed back too, and refused (see _send)
    )


class _Adapter(HTTPAdapter):
    """requests' adapter with our TLS context (the system's trust store) in its pools."""

    def __init__(self, context: ssl.SSLContext | None, **kwargs: Any) -> None:
        self._context = context  # read by init_poolmanager, which HTTPAdapter's __init__ calls
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        if self._context is not None:
            kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        if self._context is not None:
            kwargs["ssl_context"] = self._context
        return super().proxy_manager_for(proxy, **kwargs)


class _TooLarge(requests.RequestException):
    """An answer over the size cap."""


class _TooSlow(requests.RequestException):
    """An answer whose body took longer than its time cap to arrive (trickling)."""


class _BoundedBody:
    """A response hook: reads the streamed body, decompressed, up to ``limit`` bytes and within
    ``seconds``, so that neither python-jenkins (which reads an error answer whole) nor we ever
    hold more. Over either: the connection is closed and :class:`_TooLarge` raised.

    It reads with urllib3's ``read1`` (what one socket read brings) rather than requests'
    ``iter_content``, which fills each chunk before returning: a body trickling a byte at a time
    would pass every check only once its chunk was full, however long that took. urllib3's
    errors are raised as requests raises them from ``iter_content``."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        # A request of this thread that wants only the start of its body (a log whose size its
        # headers tell): beyond ``cap`` bytes the connection is closed, no error raised.
        self.local = threading.local()

    def __call__(self, response: requests.Response, *_: Any, **__: Any) -> requests.Response:
        deadline = time.monotonic() + self.seconds
        chunks: list[bytes] = []
        size = 0
        cap: int | None = getattr(self.local, "cap", None)
        try:
            while chunk := response.raw.read1(64 * 1024, decode_content=True):
                size += len(chunk)
                if cap is not None and size > cap:  # the caller wants no more: no error
                    response.close()
                    chunks.append(chunk)
                    break
                if size > self.limit:
                    response.close()
                    raise _TooLarge(f"over {self.limit // (1024 * 1024)} MiB")
                if time.monotonic() > deadline:
                    response.close()
                    raise _TooSlow(f"its body took over {self.seconds:.0f} s to arrive")
                chunks.append(chunk)
        except urllib3.exceptions.DecodeError as exc:
            raise requests.exceptions.ContentDecodingError(exc) from None
        except urllib3.exceptions.ReadTimeoutError as exc:
            raise requests.ConnectionError(exc) from None
        except urllib3.exceptions.ProtocolError as exc:
            raise requests.exceptions.ChunkedEncodingError(exc) from None
        response._content = b"".join(chunks)  # what .content and .text return from now on
        return response


RequestObserver = Callable[[str, int | None], None]
"""Called after each request with its kind and HTTP status (None: no response)."""


class JenkinsClient:
    """GET-only, thread-safe access to one controller, at most ``max_concurrency`` requests at once
    (the ceiling: the governor lowers it while Jenkins slows down or fails, see governor.py)."""

    def __init__(
        self,
        url: str,
        username: str,
        api_token: str,
        *,
        timeout: float,
        verify_tls: bool | Path = True,
        max_concurrency: int = 4,
        retries: int = 3,
        backoff_factor: float = 0.5,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        observer: RequestObserver | None = None,
    ) -> None:
        # Credentials come from jenkins.username/api_token; any in the URL are dropped, never shown.
        url = without_userinfo(url)
        self.base_url = url if url.endswith("/") else url + "/"
        self._server = python_jenkins.Jenkins(
            self.base_url, username=username, password=api_token, timeout=timeout
        )
        session: requests.Session = self._server._session
        context = None
        if verify_tls is True and self.base_url.startswith("https:"):
            context = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        elif verify_tls is False:
            log.warning(
                "Unverified HTTPS to %s: jenkins.verify_tls is false, Jenkins' certificate is not "
                "checked (set it to the CA bundle's path instead)",
                urlsplit(self.base_url).hostname,
            )
            # That line says it once; urllib3 would warn again at every request.
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        adapter = _Adapter(
            context,
            max_retries=retry_policy(retries, backoff_factor),
            pool_connections=1,
            pool_maxsize=max(max_concurrency, 1),
        )
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.verify = str(verify_tls) if isinstance(verify_tls, Path) else verify_tls
        # The session's credentials, so no auth probing (python-jenkins' resolve_auth).
        session.auth = requests.auth.HTTPBasicAuth(username, api_token)
        session.max_redirects = 0
        session.stream = True  # the body is read by the hook, bounded
        self._bounded = _BoundedBody(max_response_bytes, max(timeout, 1.0) * BODY_TIME_FACTOR)
        session.hooks["response"].append(self._bounded)
        # python-jenkins asks requests to read the proxy and CA-bundle variables of the environment
        # again on every request; every request goes to the same host, so they are read once here
        # (as requests reads them: HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE...), and not again.
        environment = session.merge_environment_settings(
            self.base_url, {}, None, session.verify, None
        )
        session.proxies = environment["proxies"]
        session.verify = environment["verify"]
        session.trust_env = False
        session.headers["Accept"] = "application/json"
        session.headers["User-Agent"] = f"harvester/{__version__} (python-jenkins)"
        # Jenkins sits beside the harvester: compressing would cost the controller CPU for nothing.
        session.headers["Accept-Encoding"] = "identity"
        self._session = session
        self.governor = Governor(max_concurrency)
        # Asked before every request: False (a daemon that is not, or no longer, its
        # controller's active replica) starts none.
        self.admit: Callable[[], bool] | None = None
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()
        self._observer = observer

    # -- accounting ----------------------------------------------------------------------------

    @property
    def total_requests(self) -> int:
        with self._counts_lock:
            return sum(self._counts.values())

    def _count(self, kind: str, status: int | None) -> None:
        with self._counts_lock:
            self._counts[kind] += 1
        if self._observer is not None:
            self._observer(kind, status)

    # -- the one request path ------------------------------------------------------------------

    def _send(
        self, path: str, *, kind: str, job: str | None = None, build: int | None = None
    ) -> requests.Response:
        """GET ``jenkins.url + path``, mapping every failure to our errors: the one request path."""
        url = self.base_url + path
        shown = url.split("?", 1)[0]
        status: int | None = None
        started = time.perf_counter()
        asked: float | None = None  # when the request went out (None: it did not)
        try:
            with self.governor.slot():
                # Asked once the slot is had, right before the request: the wait for a slot may
                # be long (a paused process), and the answer may have changed meanwhile.
                if self.admit is not None and not self.admit():
                    raise NotActive(
                        "this replica is not the active one: no request to Jenkins",
                        job=job,
                        hint="another replica collects; this one waits as a standby",
                    )
                asked = time.perf_counter()
                failed = True  # no answer at all: Jenkins is struggling (or gone)
                try:
                    # Credentials are the session's (Basic, jenkins.username/api_token): no
                    # auth probing, and GETs need no crumb.
                    response: requests.Response = self._server.jenkins_request(
                        requests.Request("GET", url), add_crumb=False, resolve_auth=False
                    )
                    status = response.status_code
                    failed = status >= 500
                except python_jenkins.NotFoundException:
                    failed = False  # an answer, and a quick one
                    raise
                except python_jenkins.JenkinsException as exc:  # a timeout is one too
                    failed = (_status_of(exc.__context__) or 500) >= 500
                    raise
                except requests.HTTPError as exc:
                    failed = (_status_of(exc) or 500) >= 500
                    raise
                except (_TooLarge, requests.exceptions.ContentDecodingError):
                    failed = False  # an answer, only not one we can read: not a sign of load
                    raise
                finally:
                    self.governor.record(kind, time.perf_counter() - asked, failed=failed)
            if 300 <= response.status_code < 400:
                raise _redirect(job, shown, status)
        except requests.TooManyRedirects as exc:
            status = _status_of(exc)
            raise _redirect(job, shown, status) from None
        except (_TooLarge, requests.exceptions.ContentDecodingError) as exc:
            large = isinstance(exc, _TooLarge)
            raise JenkinsMalformedResponse(
                f"Jenkins' answer is too large to read ({exc})"
                if large
                else "Jenkins answered with a body that cannot be decompressed",
                job=job,
                build=build,
                url=shown,
                hint="retried next cycle; "
                + (
                    "raise jenkins.max_response_mib if the answer is legitimate, or list the "
                    "job in jenkins.exclude"
                    if large
                    else "is a proxy in front of Jenkins mangling answers?"
                ),
            ) from None
        except (requests.exceptions.ChunkedEncodingError, _TooSlow) as exc:
            raise JenkinsTransientError(
                f"Jenkins' answer was cut short ({exc})"
                if isinstance(exc, _TooSlow)
                else "Jenkins' answer broke off before its end",
                job=job,
                build=build,
                url=shown,
                hint="retried next cycle; raise jenkins.timeout_seconds if Jenkins is this slow",
            ) from None
        except python_jenkins.NotFoundException:
            status = 404
            if job is None and path.startswith(("api/json", "whoAmI/")):
                raise JenkinsUnreachable(
                    "404 on the API root: does jenkins.url need the context path, e.g. /jenkins/?",
                    url=shown,
                    status=404,
                    hint="set jenkins.url to the address Jenkins' own pages are under",
                ) from None
            raise JenkinsNotFound(
                "Jenkins has no such item", job=job, build=build, url=shown, status=404
            ) from None
        except python_jenkins.TimeoutException:
            raise JenkinsTransientError(
                "Jenkins did not answer in time",
                job=job,
                build=build,
                url=shown,
                hint="retried next cycle; raise jenkins.timeout_seconds if this persists",
            ) from None
        except python_jenkins.JenkinsException as exc:
            # python-jenkins folds 401/403/500 into one exception; the HTTP error is its context.
            status = _status_of(exc.__context__)
            raise self._http_failure(status, job, build, shown) from None
        except requests.HTTPError as exc:
            status = _status_of(exc)
            raise self._http_failure(status, job, build, shown) from None
        except requests.exceptions.SSLError as exc:
            if "wrong version number" in str(exc).lower():
                raise JenkinsUnreachable(
                    "wrong version number: is jenkins.url https on a plain-http port?",
                    url=shown,
                    hint="use http:// in jenkins.url if Jenkins serves plain HTTP there",
                ) from None
            # A configuration problem, not a transient one: retrying will not make it trusted.
            raise JenkinsUnreachable(
                f"Jenkins' TLS certificate cannot be verified ({_tls_reason(exc)})",
                url=shown,
                hint="set jenkins.verify_tls to the path of the CA bundle that signed it "
                "(false turns verification off)",
            ) from None
        except requests.ConnectionError as exc:
            raise JenkinsTransientError(
                f"cannot connect to Jenkins ({_reason(exc)})", job=job, build=build, url=shown
            ) from None
        finally:
            if asked is not None:
                self._count(kind, status)
            if asked is not None and log.isEnabledFor(logging.DEBUG):
                took = (time.perf_counter() - started) * 1000
                log.debug(
                    "GET %s -> %s in %.0f ms",
                    shown.removeprefix(self.base_url) or "/",
                    status if status is not None else "no answer",
                    took,
                    extra={"method": "GET", "path": shown, "status": status, "ms": round(took)},
                )
        return response

    def get_json(
        self, path: str, *, kind: str, job: str | None = None, build: int | None = None
    ) -> Any:
        """GET ``jenkins.url + path`` and parse its JSON."""
        return self._parsed(self._send(path, kind=kind, job=job, build=build), job, build)

    def _parsed(self, response: requests.Response, job: str | None, build: int | None) -> Any:
        try:
            return json.loads(response.content)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested beyond reason
            raise JenkinsMalformedResponse(
                "Jenkins answered with something that is not JSON (or nested too deeply)",
                job=job,
                build=build,
                url=response.url.split("?", 1)[0],
                status=response.status_code,
                hint="a proxy or login page in front of Jenkins? retried next cycle",
            ) from None

    def _http_failure(
        self, status: int | None, job: str | None, build: int | None, url: str
    ) -> Exception:
        if status == 403 and job is not None:
            # The credentials work (discovery listed this job) but this item is off-limits:
            # that job's failure, not the controller's (exit 1, not 3).
            return JenkinsError(
                "Jenkins denies access to this item",
                job=job,
                build=build,
                url=url,
                status=status,
                hint="grant the harvester's user Job/Read on it, or list it in jenkins.exclude",
            )
        if status in (401, 403):
            return JenkinsUnreachable(
                "Jenkins rejected the credentials",
                url=url,
                status=status,
                hint="check jenkins.username and jenkins.api_token (an API token, not a password)",
            )
        if status is None or status in RETRIED_STATUSES or status >= 500:
            return JenkinsTransientError(
                "Jenkins answered with an error",
                job=job,
                build=build,
                url=url,
                status=status,
                hint="retried next cycle",
            )
        return JenkinsError(
            "Jenkins refused the request", job=job, build=build, url=url, status=status
        )

    # -- what the harvester asks -----------------------------------------------------------------

    def discover(self) -> list[DiscoveredJob]:
        """Every buildable job, through nested folders, multibranch projects and organization
        folders: one request for the first FOLDER_LEVELS levels, one more per deeper container."""
        found: list[DiscoveredJob] = []
        pending: list[Container] = [(None, ())]
        while pending:
            container, containers = pending.pop()
            path = "" if container is None else names.job_path(container)
            data = self.get_json(
                f"{path}api/json?tree={discovery_tree()}", kind="discovery", job=container
            )
            walk(data, container, containers, found, pending)
        return found

    def builds_page(self, job: str, start: int, stop: int) -> list[dict[str, Any]]:
        """Builds ``start`` to ``stop`` (newest first) with everything the mapping needs."""
        field = "builds" if stop <= BUILDS_PAGE else "allBuilds"
        data = self.get_json(
            f"{names.job_path(job)}api/json?tree={field}[{BUILD_FIELDS}]{{{start},{stop}}}",
            kind="builds",
            job=job,
        )
        if not isinstance(data, dict) or not isinstance(data.get(field, []), list):
            raise JenkinsMalformedResponse(f"no {field} list in the job JSON", job=job)
        return [b for b in data.get(field) or [] if isinstance(b, dict)]

    def _build_object(self, job: str, number: int, rest: str, *, kind: str) -> dict[str, Any]:
        """A JSON object about one build (``<job path><number>/<rest>``); anything else is
        malformed."""
        return self._object(self._build_answer(job, number, rest, kind=kind), job, number, kind)

    def _build_answer(self, job: str, number: int, rest: str, *, kind: str) -> requests.Response:
        return self._send(f"{names.job_path(job)}{number}/{rest}", kind=kind, job=job, build=number)

    def _object(
        self, response: requests.Response, job: str, number: int, kind: str
    ) -> dict[str, Any]:
        data = self._parsed(response, job, number)
        if not isinstance(data, dict):
            raise JenkinsMalformedResponse(
                f"the {kind} answer is not a JSON object", job=job, build=number
            )
        return data

    def build(self, job: str, number: int) -> dict[str, Any]:
        return self._build_object(job, number, f"api/json?tree={BUILD_FIELDS}", kind="build")

    def build_causes(self, job: str, number: int) -> dict[str, Any] | None:
        """An upstream build's causes, or None when Jenkins no longer has it (deleted, rotated)."""
        try:
            return self._build_object(
                job, number, f"api/json?tree=actions[_class,{CAUSE_FIELDS}]", kind="upstream"
            )
        except JenkinsNotFound:
            return None

    def pipeline_run(self, job: str, number: int) -> PipelineRun | None:
        """``wfapi/describe?fullStages=true``: every stage with its steps in one request. None when
        wfapi answers 404 (not a Pipeline, or the Pipeline Stage View plugin is not installed)."""
        try:
            response = self._build_answer(
                job, number, "wfapi/describe?fullStages=true", kind="wfapi"
            )
        except JenkinsNotFound:
            return None
        try:
            # Parsed and validated in one pass by pydantic-core (its parser bounds the depth):
            # this runs for every Pipeline build. What fails is read again below, to say why.
            return PipelineRun.model_validate_json(response.content)
        except ValidationError:
            pass
        data = self._object(response, job, number, "wfapi")
        try:
            return PipelineRun.model_validate(data)
        except ValidationError:
            raise JenkinsMalformedResponse(
                "wfapi answer does not validate", job=job, build=number
            ) from None

    def artifact(self, job: str, number: int, relative_path: str) -> bytes | None:
        """An archived artifact's content (an artifact manifest), or None when
        Jenkins answers 404 (absent). A 5xx or a timeout raises: the build is held back."""
        try:
            response = self._send(
                f"{names.job_path(job)}{number}/artifact/{names.artifact_path(relative_path)}",
                kind="artifact",
                job=job,
                build=number,
            )
        except JenkinsNotFound:
            return None
        return bytes(response.content)

    def log_tail(self, job: str, number: int, node: str | None, limit: int) -> str | None:
        """The last ``limit`` bytes of a node's plain-text log (``node`` None: the build's), or
        None when Jenkins has none (404). Read from an offset, never from the start of a long log:
        Jenkins answers a start past the end with the whole log, so the size is learnt first
        from ``X-Text-Size``: one request for a log under ``limit``, two above it."""
        path = (
            "logText/progressiveText"
            if node is None
            else (f"execution/node/{node}/log/logText/progressiveText")
        )
        try:
            response = self._capped(job, number, f"{path}?start={limit}", limit)
            size = _text_size(response)
            if size is not None and size >= limit:  # else the whole log (Jenkins started at 0)
                response = self._capped(job, number, f"{path}?start={size - limit}", 2 * limit)
        except JenkinsNotFound:
            return None
        # Cut in bytes, as the limit is: a character cut in two becomes a replacement character.
        return response.content[-limit:].decode("utf-8", errors="replace")

    def _capped(self, job: str, number: int, rest: str, cap: int) -> requests.Response:
        self._bounded.local.cap = cap
        try:
            return self._build_answer(job, number, rest, kind="log")
        finally:
            self._bounded.local.cap = None

    def test_report(self, job: str, number: int) -> dict[str, Any] | None:
        """The build's JUnit results (one request), or None when it has none (404)."""
        try:
            return self._build_object(
                job, number, f"testReport/api/json?tree={TEST_FIELDS}", kind="tests"
            )
        except JenkinsNotFound:
            return None

    def version(self) -> str | None:
        """The controller's version (``X-Jenkins`` header of the root API)."""
        version = self._send("api/json?tree=mode", kind="version").headers.get("X-Jenkins")
        return str(version) if version else None

    def whoami(self) -> str | None:
        data = self.get_json("whoAmI/api/json", kind="whoami")
        return str(data.get("name")) if isinstance(data, dict) else None

    def close(self) -> None:
        self._session.close()


TEST_FIELDS = (
    "suites[name,duration,timestamp,cases[className,name,duration,status,skipped,"
    "skippedMessage,errorDetails,errorStackTrace]]"
)


def _text_size(response: requests.Response) -> int | None:
    try:
        return int(response.headers.get("X-Text-Size", ""))
    except ValueError:
        return None


def _redirect(job: str | None, url: str, status: int | None) -> JenkinsError:
    return JenkinsError(
        "Jenkins answered with a redirect, which is not followed",
        job=job,
        url=url,
        status=status,
        hint="set jenkins.url to the exact base URL Jenkins serves (scheme, host, path)",
    )


def _status_of(exc: BaseException | None) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return int(status) if isinstance(status, int) else None


def _tls_reason(exc: BaseException) -> str:
    # The useful part ("certificate verify failed: self-signed certificate") sits deep inside
    # urllib3's wrapping, past where _reason would cut.
    text = str(exc)
    start = text.find("certificate verify failed")
    return text[start:].split(" (_ssl", 1)[0].rstrip(")'\"") if start >= 0 else _reason(exc)


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")
_HINTS = (
    ("Name or service not known", "host not found"),
    ("nodename nor servname", "host not found"),
    ("Temporary failure in name resolution", "host not found"),
    ("timed out", "timed out"),
    ("RemoteDisconnected", "the connection was closed without an answer"),
)


def _reason(exc: BaseException) -> str:
    """The root cause in a few words (``connection refused``), not urllib3's wrapping of it."""
    text = str(exc)
    found = _ERRNO.search(text)
    if found:
        return found.group(1).strip().lower()
    for needle, words in _HINTS:
        if needle in text:
            return words
    return text if len(text) < 200 else text[:200] + "..."
