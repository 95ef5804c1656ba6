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
from harvester.config import config_path, settings_from_mapping
from harvester.daemon.scheduler import run_forever
from harvester.daemon.status import Health, StatusServer
from harvester.demo import Receiver, Simulator, demo_instance
from harvester.errors import ExitCode, HarvesterError, UsageError
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
            health.record(result.succeeded, result.finished_at, result.summary())

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
    if delivery.credentials_error is not None:
        complain(f"error: {delivery.credentials_error}")
    return result.exit_code


def cmd_preview(args: argparse.Namespace) -> int:
    config = settings(args)
    # Only Jenkins: preview neither reads nor writes the ledger (nor creates it).
    jenkins = jenkins_client(config)
    try:
        payload = make_collector(config, jenkins, None).preview(args.job, args.build)
    finally:
        jenkins.close()
    output.print_json(json.loads(payload.to_json()))
    return ExitCode.OK


def cmd_check(args: argparse.Namespace) -> int:
    try:
        config = settings(args)
    except HarvesterError as exc:
        say(f"FAIL config: {exc}")
        raise
    say(f"ok   config: {config_path(args.config)}")
    # Jenkins and the webhook only: checking must not create or migrate the ledger.
    jenkins, webhook = jenkins_client(config), webhook_client(config)
    failures = 0
    code = ExitCode.OK
    try:
        try:
            version = jenkins.version()
            user = jenkins.whoami()
            say(
                f"ok   jenkins: {config.jenkins.url} answers (Jenkins {version or 'version unknown'}"
                f"), authenticated as {user}"
            )
            jobs = jenkins.discover()
            say(f"ok   jenkins: {len(jobs)} job(s) visible")
            pipeline = next(
                (j for j in jobs if j.is_pipeline and j.last_completed_build is not None), None
            )
            if pipeline is None:
                say("skip wfapi: no finished Pipeline build to ask about")
            elif pipeline.last_completed_build is not None:
                found = jenkins.pipeline_run(pipeline.full_name, pipeline.last_completed_build)
                if found is None:
                    failures += 1
                    say(
                        f"FAIL wfapi: 404 for {pipeline.full_name}: install the Pipeline Stage "
                        "View plugin, or builds are sent without stages"
                    )
                else:
                    say(f"ok   wfapi: answers for {pipeline.full_name}")
        except HarvesterError as exc:
            say(f"FAIL jenkins: {exc}")
            code = ExitCode.JENKINS_UNREACHABLE
        try:
            say(f"ok   webhook: host reachable ({webhook.reachable()}); nothing sent")
        except HarvesterError as exc:
            failures += 1
            say(f"FAIL webhook: {exc}")
    finally:
        jenkins.close()
        webhook.close()
    if code != ExitCode.OK:
        return code
    return ExitCode.WORK_LEFT if failures else ExitCode.OK


def cmd_demo(args: argparse.Namespace) -> int:
    configure_logging(args.log_level or "WARNING", "text")
    moment = now()
    with (
        Simulator(root_url="https://jenkins.internal.example/") as sim,
        Receiver() as receiver,
        tempfile.TemporaryDirectory(prefix="harvester-demo-") as workdir,
    ):
        demo_instance(sim, to_epoch_ms(moment))
        config = settings_from_mapping(
            {
                "jenkins": {"url": sim.url, "username": sim.username, "api_token": sim.api_token},
                "sei": {
                    "url": receiver.url,
                    "token": "demo-token",
                    "instance_guid": "3f2b8c1e-0d4a-4c55-9e1b-7a6f5d4c3b2a",
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
