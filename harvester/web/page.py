"""The status page's HTTP side: routes a request to its view, renders it with Jinja2 (escaping
every value by default) or as JSON under ``/api/``, and carries out the admin POSTs."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined

from harvester.errors import HarvesterError
from harvester.ledger import STATUSES
from harvester.util.httpserver import Reply
from harvester.web.chart import HEIGHT, WIDTH
from harvester.web.views import Views

log = logging.getLogger("harvester.web")

MAX_FORM_BYTES = 8192
MAX_GLOB = 1024

# No script runs on the page at all (it needs none): a value that escaped escaping still could
# not execute. Styles are inline; nothing is loaded from anywhere else.
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class _NotFound(Exception):
    pass


class _BadRequest(Exception):
    pass


def job_path(job: str) -> str:
    """A job's name in a URL path: folders stay readable, everything else is quoted (a name
    holds ``%2F`` where a branch had a slash: that becomes ``%252F`` and comes back whole)."""
    return quote(job, safe="/")


class StatusPage:
    """Serves ``/``, the tables, the job and build views, the search and ``/api/...``."""

    def __init__(
        self,
        views: Views,
        *,
        admin_token: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.views = views
        self.admin_token = admin_token
        self.clock = clock or (lambda: datetime.now(tz=UTC))
        self.env = Environment(
            loader=PackageLoader("harvester.web", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["job_path"] = job_path
        self.env.globals.update(
            statuses=STATUSES,
            admin=admin_token is not None,
            chart_width=WIDTH,
            chart_height=HEIGHT,
        )

    def __call__(self, method: str, target: str, body: bytes) -> Reply | None:
        parts = urlsplit(target)
        path = unquote(parts.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        as_json = path.startswith("/api/")
        if as_json:
            path = path.removeprefix("/api")
            path = "/" if path == "/overview" else path
        try:
            if method == "POST":
                return self._post(path, body)
            found = self._view(path, query)
            if found is None:
                return None
            template, data = found
            if as_json:
                return _json(200, data)
            return self._html(200, template, data)
        except _NotFound as exc:
            return self._error(404, str(exc), as_json)
        except _BadRequest as exc:
            return self._error(400, str(exc), as_json)
        except HarvesterError as exc:  # the ledger cannot be read just now
            return self._error(503, str(exc), as_json)

    # -- reading --------------------------------------------------------------------------------

    def _view(self, path: str, query: dict[str, str]) -> tuple[str, dict[str, Any]] | None:
        after = query.get("after")
        if after is not None and len(after) > 64:
            raise _BadRequest("after: not a page key")
        if path == "/":
            return "overview.html", self.views.overview()
        if path == "/builds":
            status = query.get("status") or None
            if status is not None and status not in STATUSES:
                raise _BadRequest(f"status: one of {', '.join(STATUSES)}")
            return "builds.html", self.views.builds(status, after)
        if path == "/held":
            return "held.html", self.views.held()
        if path == "/search":
            glob = query.get("job", "")
            if len(glob) > MAX_GLOB:
                raise _BadRequest(f"job: a glob of at most {MAX_GLOB} characters")
            number = _number(query.get("build") or None)
            return "search.html", self.views.search(glob, number, after)
        if path.startswith("/jobs/"):
            job = path.removeprefix("/jobs/")
            data = self.views.job(job, after)
            if data is None:
                raise _NotFound(f"the ledger knows no job {job!r}")
            return "job.html", data
        if path.startswith("/builds/"):
            job, _, text = path.removeprefix("/builds/").rpartition("/")
            number = _number(text, required=True)
            assert number is not None  # required
            build = self.views.build(job, number)
            if build is None:
                raise _NotFound(f"the ledger holds no build {job} #{number}")
            return "build.html", build
        return None

    # -- changing -------------------------------------------------------------------------------

    def _post(self, path: str, body: bytes) -> Reply | None:
        if not path.startswith("/actions/"):
            return None
        if self.admin_token is None:
            return self._error(
                403, "the status page is read-only: set server.admin_token to allow changes", False
            )
        if len(body) > MAX_FORM_BYTES:
            return self._error(413, "the form is too large", False)
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        given = form.get("token", "").encode()
        if not hmac.compare_digest(given, self.admin_token.encode()):
            return self._error(403, "wrong admin token (server.admin_token)", False)
        ledger = self.views.ledger
        now = self.clock()
        if path == "/actions/retry-dead":
            ids = ledger.ids("dead")
            count = ledger.retry(ids, now, by="status page")
            log.info("status page: %d dead build(s) set back to pending", count)
            return _see("/builds?status=pending")
        job = form.get("job", "")
        number = _number(form.get("build"), required=True)
        assert number is not None
        entry = ledger.entry(job, number)
        if entry is None:
            return self._error(404, f"the ledger holds no build {job} #{number}", False)
        if path == "/actions/retry":
            ledger.retry([entry.id], now, by="status page")
            log.info("status page: %s #%d set back to pending", job, number)
            return _see(f"/builds/{job_path(job)}/{number}")
        if path == "/actions/forget":
            ledger.forget(job, number, now)
            log.info("status page: forgot %s #%d; the next cycle collects it again", job, number)
            return _see(f"/jobs/{job_path(job)}")
        return self._error(404, f"no such action: {path}", False)

    # -- rendering ------------------------------------------------------------------------------

    def _html(self, status: int, template: str, data: dict[str, Any]) -> Reply:
        text = self.env.get_template(template).render(data=data)
        return Reply(status, text.encode(), "text/html; charset=utf-8", dict(_HEADERS))

    def _error(self, status: int, message: str, as_json: bool) -> Reply:
        if as_json:
            return _json(status, {"error": message})
        return self._html(status, "error.html", {"status": status, "message": message})


def _number(text: str | None, *, required: bool = False) -> int | None:
    if text is None or text == "":
        if required:
            raise _BadRequest("build: a build number is required")
        return None
    if not text.isdigit() or len(text) > 10:
        raise _BadRequest(f"build: {text[:20]!r} is not a build number")
    return int(text)


def _json(status: int, data: dict[str, Any]) -> Reply:
    body = json.dumps(data, ensure_ascii=False, indent=1).encode()
    return Reply(status, body, "application/json", {"Cache-Control": "no-store"})


def _see(location: str) -> Reply:
    return Reply(303, b"", "text/plain", {"Location": location})
