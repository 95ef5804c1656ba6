"""``check``: validate the config, then prove each part without storing anything
anywhere, one line each."""

from __future__ import annotations

import argparse

from harvester.app import jenkins_client, now, open_ledger, webhook_client
from harvester.cli.common import settings
from harvester.cli.output import say
from harvester.config import Settings, config_path
from harvester.errors import (
    ExitCode,
    HarvesterError,
    WebhookCredentialsRejected,
    WebhookUrlRejected,
)
from harvester.ledger import Ledger
from harvester.sei.webhook import WebhookClient
from harvester.util.urls import mask

PLACEHOLDER_GUID = "00000000-0000-0000-0000-000000000000"
PLACEHOLDER_TOKENS = frozenset({"change-me", "changeme", "...", "xxx", "todo", "<token>", "token"})


def _placeholder(secret: str) -> bool:
    return secret.strip().lower() in PLACEHOLDER_TOKENS or "change-me" in secret.lower()


class _Checks:
    """The lines of ``check`` and the exit code they add up to."""

    def __init__(self) -> None:
        self.code = ExitCode.OK

    def ok(self, what: str, text: str) -> None:
        say(f"ok   {what}: {text}")

    def warn(self, what: str, text: str) -> None:
        say(f"WARN {what}: {text}")

    def skip(self, what: str, text: str) -> None:
        say(f"skip {what}: {text}")

    def fail(self, what: str, text: str, code: int = ExitCode.WORK_LEFT) -> None:
        say(f"FAIL {what}: {text}")
        # The most specific code wins: Jenkins (3), then the webhook (4), then anything else (1).
        if _CHECK_RANK[code] > _CHECK_RANK[self.code]:
            self.code = code


_CHECK_RANK = {
    ExitCode.OK: 0,
    ExitCode.WORK_LEFT: 1,
    ExitCode.WEBHOOK_CREDENTIALS: 2,
    ExitCode.JENKINS_UNREACHABLE: 3,
}


def _check_ledger(config: Settings, checks: _Checks) -> None:
    try:
        new = Ledger.not_created_yet(config.ledger.url)
        if new is not None:  # check stores nothing: not even an empty ledger file
            checks.ok("ledger", f"{new} does not exist yet; the first run creates it there")
            return
        ledger = open_ledger(config)
        try:
            ledger.probe_write(now())
        finally:
            ledger.close()
    except HarvesterError as exc:
        checks.fail("ledger", str(exc).removeprefix("ledger: "))
        return
    checks.ok("ledger", f"{mask(config.ledger.url)} opens and can be written")


def _check_jenkins(config: Settings, checks: _Checks) -> None:
    if _placeholder(config.jenkins.secret.get_secret_value()):
        checks.fail(
            "jenkins",
            "jenkins.api_token is a placeholder: set the harvester user's API token",
            ExitCode.JENKINS_UNREACHABLE,
        )
        return
    jenkins = jenkins_client(config)
    try:
        version = jenkins.version()
        user = jenkins.whoami()
        checks.ok(
            "jenkins",
            f"{config.jenkins.url} answers (Jenkins {version or 'version unknown'}), "
            f"authenticated as {user}",
        )
        jobs = jenkins.discover()
        checks.ok("jenkins", f"{len(jobs)} job(s) visible")
        pipeline = next(
            (j for j in jobs if j.is_pipeline and j.last_completed_build is not None), None
        )
        if pipeline is None or pipeline.last_completed_build is None:
            checks.skip("wfapi", "no finished Pipeline build to ask about")
        elif jenkins.pipeline_run(pipeline.full_name, pipeline.last_completed_build) is None:
            checks.fail(
                "wfapi",
                f"404 for {pipeline.full_name}: install the Pipeline Stage View plugin, or "
                "builds are sent without stages",
            )
        else:
            checks.ok("wfapi", f"answers for {pipeline.full_name}")
    except HarvesterError as exc:
        checks.fail("jenkins", str(exc), ExitCode.JENKINS_UNREACHABLE)
    finally:
        jenkins.close()


def _check_webhook(config: Settings, checks: _Checks) -> None:
    if _placeholder(config.sei.secret.get_secret_value()):
        checks.fail(
            "webhook",
            "sei.token is a placeholder: set the SEI API key (nothing was sent)",
            ExitCode.WEBHOOK_CREDENTIALS,
        )
        return
    webhook = webhook_client(config)
    try:
        try:
            status = webhook.probe_empty()
        except (WebhookCredentialsRejected, WebhookUrlRejected) as exc:
            checks.fail("webhook", str(exc), ExitCode.WEBHOOK_CREDENTIALS)
            return
        except HarvesterError as exc:
            checks.fail("webhook", str(exc))
            return
        if status == 400 and config.sei.channel == "plugin":
            checks.ok(
                "webhook",
                f"{webhook.url} (plugin channel) refused a request of an unknown type (HTTP 400, "
                "before storing anything): the URL, the credentials and the Admin role work",
            )
        elif status == 400:
            checks.ok(
                "webhook",
                f"{config.sei.url} refused an empty body (HTTP 400, before storing anything): "
                "the URL and the credentials work",
            )
        elif 200 <= status < 300:
            checks.warn(
                "webhook",
                f"{config.sei.url} accepted an empty body (HTTP {status}): the credentials work, "
                "but this receiver does not validate builds as SEI does",
            )
        else:
            checks.fail("webhook", f"{webhook.url} answered HTTP {status} to its probe")
            return
        _check_instance(config, webhook, checks)
    finally:
        webhook.close()


def _check_instance(config: Settings, webhook: WebhookClient, checks: _Checks) -> None:
    guid = config.sei.instance_guid
    if guid == PLACEHOLDER_GUID:
        checks.fail(
            "instance",
            "sei.instance_guid is the all-zero placeholder: set the GUID of your SEI CI/CD "
            "instance (SEI accepts builds for an unknown instance and then drops them)",
            ExitCode.WEBHOOK_CREDENTIALS,
        )
        return
    try:
        status = webhook.instance_status(guid)
    except HarvesterError as exc:
        checks.fail("instance", str(exc))
        return
    if status is None:
        checks.skip("instance", "sei.url does not end in /v1/custom-cicd: not an SEI URL")
    elif status == 200:
        checks.ok("instance", f"SEI knows instance {guid}")
    elif status == 404:
        checks.fail(
            "instance",
            f"SEI has no instance {guid}: check sei.instance_guid (SEI answers 202 for builds "
            "of an unknown instance and then drops them)",
            ExitCode.WEBHOOK_CREDENTIALS,
        )
    elif status in (401, 403):
        checks.ok("instance", f"cannot verify {guid} (HTTP {status}: the key may not read it)")
    else:
        checks.warn("instance", f"cannot verify {guid} (HTTP {status})")


def cmd_check(args: argparse.Namespace) -> int:
    """Prove each part without storing anything anywhere."""
    try:
        config = settings(args)
    except HarvesterError as exc:
        say(f"FAIL config: {exc}")  # the line of its own, and only it: the exit code says the rest
        return exc.exit_code
    checks = _Checks()
    checks.ok("config", str(config_path(args.config)))
    _check_ledger(config, checks)
    _check_jenkins(config, checks)
    _check_webhook(config, checks)
    return checks.code
