"""The harvester's error hierarchy.

Every error a user can see is a :class:`HarvesterError`. Each class declares the exit code it maps to
and the context it carries (job, build, URL, status, field), and each message says what to do next.
The CLI is the one place that turns these into a message on stderr and an exit code
(:func:`harvester.cli.main.main`).

Retriable vs fatal (after the Singer SDK): the ``...Transient...`` and ``...Malformed...`` classes are
failures expected to go away (a timeout, a 5xx, a proxy's error page); the cycle records them and tries
again later. Everything else is fatal for the thing it concerns (one build, one job, or the whole
command for config and credentials).
"""

from __future__ import annotations

from typing import ClassVar

from harvester.util.urls import scrub


class ExitCode:
    """Exit codes of README "Commands"."""

    OK = 0
    WORK_LEFT = 1
    USAGE = 2
    JENKINS_UNREACHABLE = 3
    WEBHOOK_CREDENTIALS = 4  # also a wrong sei.url (a redirect, 404 or 405)


class HarvesterError(Exception):
    """Base of every error the harvester reports to a user."""

    exit_code: ClassVar[int] = ExitCode.WORK_LEFT

    def __init__(
        self,
        message: str,
        *,
        job: str | None = None,
        build: int | None = None,
        url: str | None = None,
        status: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.job = job
        self.build = build
        self.url = url
        self.status = status
        self.hint = hint

    def __str__(self) -> str:
        where = []
        if self.job is not None:
            where.append(f"job {self.job}" + (f" #{self.build}" if self.build is not None else ""))
        if self.url is not None:
            where.append(self.url)
        if self.status is not None:
            where.append(f"HTTP {self.status}")
        text = self.message
        if where:
            text = f"{text} ({', '.join(where)})"
        if self.hint:
            text = f"{text}: {self.hint}"
        return scrub(text)  # a URL's password never reaches a message


class UsageError(HarvesterError):
    """The command line is wrong (unknown job, bad WHEN, ...)."""

    exit_code = ExitCode.USAGE


class ConfigError(HarvesterError):
    """The configuration is invalid. ``field`` is the dotted path of the key at fault."""

    exit_code = ExitCode.USAGE

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class JenkinsError(HarvesterError):
    """A request to Jenkins failed for one job or one build."""


class JenkinsTransientError(JenkinsError):
    """Jenkins answered 5xx/429, timed out or dropped the connection (after our own retries)."""


class JenkinsMalformedResponse(JenkinsError):
    """Jenkins answered something that is not the JSON we asked for (a proxy's HTML page, a cut body)."""


class JenkinsNotFound(JenkinsError):
    """Jenkins answered 404 for a job or build."""


class JenkinsUnreachable(HarvesterError):
    """Jenkins cannot be reached at all, or rejects our credentials: nothing can be collected."""

    exit_code = ExitCode.JENKINS_UNREACHABLE


class WebhookError(HarvesterError):
    """A delivery failed."""


class WebhookTransientError(WebhookError):
    """408, 429, 5xx or a network error: the delivery is retried with backoff."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, **context: object
    ) -> None:
        super().__init__(message, **context)  # type: ignore[arg-type]
        self.retry_after = retry_after


class WebhookThrottled(WebhookTransientError):
    """429: the receiver's rate limit. Every delivery worker pauses; never counts as an attempt."""


class WebhookRejected(WebhookError):
    """Any other 4xx: the receiver will never accept this payload; the row becomes dead. The
    message carries the start of the receiver's answer, which the ledger records."""


class WebhookCredentialsRejected(WebhookError):
    """401/403: every delivery would fail the same way; stop delivering for this cycle."""

    exit_code = ExitCode.WEBHOOK_CREDENTIALS


class WebhookUrlRejected(WebhookError):
    """A redirect, 404 or 405: ``sei.url`` is wrong for every build; stop delivering for this
    cycle and keep the rows pending."""

    exit_code = ExitCode.WEBHOOK_CREDENTIALS


class LedgerError(HarvesterError):
    """The ledger database cannot be opened or migrated."""

    exit_code = ExitCode.USAGE


class LedgerUnavailable(HarvesterError):
    """The ledger's database went away, or cannot be written, while working: work is left."""


class NotFoundInLedger(HarvesterError):
    """A `ledger` command named a build the ledger does not hold: bad usage (exit 2)."""

    exit_code = ExitCode.USAGE


class NotActive(HarvesterError):
    """This daemon is not (or no longer) its controller's active replica: another one holds the
    lease, or this one could not renew it in time. It starts no request and writes nothing that
    matters until it is active again."""
