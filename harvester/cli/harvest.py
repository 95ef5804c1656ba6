"""The commands that talk to Jenkins and the webhook: ``run``, ``catch-up``, ``preview``,
``check`` and ``demo``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import threading
from contextlib import ExitStack

from harvester.app import (
    build_harvester,
    close_harvester,
    jenkins_client,
    make_collector,
    now,
    open_ledger,
    webhook_client,
)
from harvester.catchup import LogProgress, Progress, catch_up
from harvester.cli import output
from harvester.cli.common import safe_url, settings
from harvester.cli.output import complain, say
from harvester.collect.preview import preview
from harvester.config import Settings, config_path, settings_from_mapping
from harvester.daemon.scheduler import run_forever
from harvester.daemon.status import Health, StatusServer
from harvester.demo import Receiver, Simulator, demo_instance
from harvester.errors import (
    ExitCode,
    HarvesterError,
    UsageError,
    WebhookCredentialsRejected,
    WebhookUrlRejected,
)
from harvester.sei.webhook import WebhookClient
from harvester.util.logs import configure_logging
from harvester.util.timeparse import iso_utc, resolve_when, to_epoch_ms

log = logging.getLogger("harvester")


def cmd_run(args: argparse.Namespace) -> int:
    config = settings(args)
    stop = threading.Event()
    harvester = build_harvester(config, stop)
    try:
        if args.once:
            return harvester.run_cycle().exit_code
        health = Health(config.harvest.interval_seconds)
        server = None
        if config.server.address is not None:
            server = StatusServer(config.server.address, harvester.metrics, health).start()
            log.info("serving /healthz and /metrics on %s", config.server.listen)

        def cycle() -> None:
            result = harvester.run_cycle()
            health.record(result.finished_at, result.problem)

        log.info(
            "harvesting %s every %.0f s into %s",
            config.jenkins.url,
            config.harvest.interval_seconds,
            safe_url(config.ledger.url),
        )
        try:
            run_forever(cycle, interval_seconds=config.harvest.interval_seconds, stop=stop)
        finally:
            if server is not None:
                server.stop()
        return ExitCode.OK
    finally:
        close_harvester(harvester)


def cmd_catch_up(args: argparse.Namespace) -> int:
    moment = now()
    try:
        since = resolve_when(args.since, moment)
        until = resolve_when(args.until, moment) if args.until else moment
    except ValueError as exc:
        raise UsageError(f"--since/--until: {exc}") from None
    if since >= until:
        raise UsageError(f"--since ({iso_utc(since)}) must be before --until ({iso_utc(until)})")
    config = settings(args)
    progress: Progress = output.BarProgress() if sys.stderr.isatty() else LogProgress()
    with ExitStack() as resources:
        sink = None
        deliverer = None
        if args.dry_run:
            # It reads the ledger to skip what it holds, but writes nothing: no claims released.
            jenkins = jenkins_client(config)
            resources.callback(jenkins.close)
            ledger = open_ledger(config)
            resources.callback(ledger.close)
            collector = make_collector(config, jenkins, ledger)

            def sink(payload: dict[str, object]) -> None:
                say(json.dumps(payload, ensure_ascii=False))

        else:
            harvester = build_harvester(config, threading.Event())
            resources.callback(close_harvester, harvester)
            collector, deliverer = harvester.collector(), harvester.deliverer()
        result = catch_up(
            collector,
            deliverer,
            since=since,
            until=until,
            job_globs=args.job,
            # A window that reaches the present settles each job up to now: leave it a cursor.
            leave_cursors=args.until is None,
            progress=progress,
            sink=sink,
        )
    collect, delivery = result.collect, result.delivery
    if args.dry_run:
        complain(f"dry run: {result.jobs} job(s) scanned; nothing was written or sent")
        return ExitCode.WORK_LEFT if collect.job_errors else ExitCode.OK
    complain(
        f"catch-up: {result.jobs} job(s), {collect.builds_collected} collected, "
        f"{delivery.delivered} delivered, {delivery.retrying} left pending, {delivery.dead} dead, "
        f"{len(collect.job_errors)} job(s) failed"
    )
    if delivery.stopping_error is not None:
        complain(f"error: {delivery.stopping_error}")
    elif delivery.receiver_down:
        complain("error: the webhook failed every delivery; re-run to send what is left")
    return result.exit_code


def cmd_preview(args: argparse.Namespace) -> int:
    config = settings(args)
    # Only Jenkins: preview neither reads nor writes the ledger (nor creates it).
    jenkins = jenkins_client(config)
    try:
        payload = preview(make_collector(config, jenkins, None), args.job, args.build)
    finally:
        jenkins.close()
    output.print_json(json.loads(payload.to_json()))
    return ExitCode.OK


DEMO_GUID = "3f2b8c1e-0d4a-4c55-9e1b-7a6f5d4c3b2a"
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
        ledger = open_ledger(config)
        try:
            ledger.probe_write(now())
        finally:
            ledger.close()
    except HarvesterError as exc:
        checks.fail("ledger", str(exc))
        return
    checks.ok("ledger", f"{safe_url(config.ledger.url)} opens and can be written")


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
        if status == 400:
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
            checks.fail("webhook", f"{config.sei.url} answered HTTP {status} to an empty body")
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
    """Prove each part without storing anything anywhere (CONTRACT §7)."""
    try:
        config = settings(args)
    except HarvesterError as exc:
        say(f"FAIL config: {exc}")
        raise
    checks = _Checks()
    checks.ok("config", str(config_path(args.config)))
    _check_ledger(config, checks)
    _check_jenkins(config, checks)
    _check_webhook(config, checks)
    return checks.code


def cmd_demo(args: argparse.Namespace) -> int:
    configure_logging(args.log_level or "WARNING", "text")
    moment = now()
    with (
        Simulator(root_url="https://jenkins.internal.example/") as sim,
        Receiver(instances={DEMO_GUID}) as receiver,
        tempfile.TemporaryDirectory(prefix="harvester-demo-") as workdir,
    ):
        demo_instance(sim, to_epoch_ms(moment))
        config = settings_from_mapping(
            {
                "jenkins": {"url": sim.url, "username": sim.username, "api_token": sim.api_token},
                "sei": {
                    "url": receiver.url,
                    "token": "demo-token",
                    "instance_guid": DEMO_GUID,
                    "instance_name": "Demo Jenkins",
                },
                "mapping": {"cd_jobs": ["platform/deploy-*"]},
                "ledger": {"url": f"sqlite:///{workdir}/demo.db"},
            }
        )
        say(f"Jenkins simulator at {sim.url}, webhook receiver at {receiver.url}")
        harvester = build_harvester(config, threading.Event())
        try:
            result = harvester.run_cycle()
            say(result.summary() + "\n")
            output.print_entries(harvester.ledger.entries(), as_json=False)
            received = receiver.accepted()
            pipelines = [p for p in received if "job_run" in p]
            if received:
                sample = pipelines[0] if pipelines else received[0]
                say(
                    f"\nOne payload as the receiver got it ({sample['job_full_name']} "
                    f"#{sample['build_number']}):"
                )
                output.print_json(sample)
        finally:
            close_harvester(harvester)
    return result.exit_code
