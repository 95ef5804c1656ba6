"""The commands that talk to Jenkins and the webhook: ``run``, ``catch-up``, ``preview``,
``check`` and ``demo``."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import sys
import tempfile
import threading
from contextlib import ExitStack
from typing import Any

from harvester.app import (
    build_harvester,
    close_harvester,
    jenkins_client,
    make_collector,
    now,
    open_ledger_to_read,
    status_page,
)
from harvester.catchup import LogProgress, Progress, catch_up
from harvester.cli import output
from harvester.cli.common import settings
from harvester.cli.output import complain, say
from harvester.collect.preview import preview
from harvester.config import settings_from_mapping, yaml_text
from harvester.cycle import Harvester
from harvester.daemon.scheduler import run_forever
from harvester.daemon.signals import stop_on_signals
from harvester.daemon.status import Health, Liveness, StatusServer
from harvester.demo import Receiver, Simulator, demo_instance, demo_new_build
from harvester.demo import Reply as DemoReply
from harvester.errors import (
    ConfigError,
    ExitCode,
    HarvesterError,
    UsageError,
)
from harvester.sei import plugin
from harvester.sei.payload import Payload, compact_json
from harvester.util.logs import configure_logging
from harvester.util.timeparse import iso_utc, resolve_when, to_epoch_ms
from harvester.util.urls import mask

log = logging.getLogger("harvester")


def cmd_run(args: argparse.Namespace) -> int:
    config = settings(args)
    stop = threading.Event()
    harvester = build_harvester(config, stop, "once" if args.once else "daemon")
    try:
        _note_since(harvester, config.harvest.since)
        if args.once:
            with stop_on_signals(stop):
                result = harvester.run_cycle()
            if stop.is_set():
                complain(f"interrupted; {result.summary()}")
                return result.exit_code or ExitCode.WORK_LEFT
            return result.exit_code
        replica = harvester.replica
        assert replica is not None  # build_harvester joins every process
        health = Health(config.harvest.interval_seconds, lambda: replica.role)
        liveness = Liveness()
        replica.listen(lambda active: health.became_active() if active else None)
        server = None
        if config.server.address is not None:
            try:
                server = StatusServer(
                    config.server.address,
                    harvester.metrics,
                    health,
                    liveness,
                    status_page(config, harvester, health),
                ).start()
            except OSError as exc:
                raise ConfigError(
                    "server.listen",
                    f"{config.server.listen} cannot be served ({exc.strerror or exc}): "
                    + (
                        "it is in use; stop what listens there or choose another port"
                        if exc.errno == errno.EADDRINUSE
                        else "choose an address of this host"
                    ),
                ) from None
            log.info(
                "serving the status page on http://%s/ (and /api/..., /livez, /readyz, /metrics)",
                config.server.listen,
            )

        def cycle() -> None:
            # A standby waits for the lease here (most of an interval, then the next tick), so
            # that a takeover's first cycle starts at once.
            if not replica.wait_active(0.9 * config.harvest.interval_seconds, stop):
                return
            result = harvester.run_cycle()
            if replica.active:
                health.record(result.finished_at, result.problem)

        log.info(
            "harvesting %s every %.0f s into %s",
            mask(config.jenkins.url),
            config.harvest.interval_seconds,
            mask(config.ledger.url),
        )
        try:
            run_forever(
                cycle,
                interval_seconds=config.harvest.interval_seconds,
                stop=stop,
                alive=liveness.beat,
            )
        finally:
            if server is not None:
                server.stop()
        return ExitCode.OK
    finally:
        close_harvester(harvester)


def _note_since(harvester: Harvester, since: str) -> None:
    """``harvest.since`` applies to jobs seen for the first time: changing it does nothing for the
    others, which a user who changed it expects to know."""
    try:
        before = harvester.ledger.swap_note("harvest.since", since)
    except HarvesterError as exc:  # a courtesy: the daemon goes on without it
        log.warning("could not compare harvest.since with the last run's: %s", exc)
        return
    if before is not None and before != since:
        log.warning(
            "harvest.since changed from %s to %s: it applies to jobs seen for the first time; "
            "jobs already harvested keep their cursors. For older builds of those, run "
            "`harvester catch-up --since %s`",
            before,
            since,
            since,
        )


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
    stop = threading.Event()
    with ExitStack() as resources:
        resources.enter_context(stop_on_signals(stop))
        sink = None
        deliverer = None
        if args.dry_run:
            # It reads the ledger to skip what it holds, but writes nothing: no claims released.
            jenkins = jenkins_client(config)
            resources.callback(jenkins.close)
            # The ledger as it is, to skip what it holds: nothing created, migrated or released.
            ledger = open_ledger_to_read(config)
            if ledger is not None:
                resources.callback(ledger.close)
            collector = make_collector(config, jenkins, ledger, stop=stop)

            def sink(payload: Payload) -> None:
                say(compact_json(payload))  # the body as it would be sent, one per line

        else:
            harvester = build_harvester(config, stop, "catch-up")
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
    if stop.is_set():
        complain("interrupted: a re-run sends only what is left")
    if args.dry_run:
        complain(
            f"dry run: {result.jobs} job(s) scanned, {collect.builds_collected} build(s) would be sent "
            "(printed above, one per line); nothing was written or sent"
        )
        return ExitCode.WORK_LEFT if collect.job_errors or stop.is_set() else ExitCode.OK
    complain(
        f"catch-up: {result.jobs} job(s), {collect.builds_collected} collected, "
        f"{delivery.delivered} delivered, {delivery.retrying} left pending, {delivery.dead} dead, "
        f"{len(collect.job_errors)} job(s) failed"
    )
    if delivery.stopping_error is not None:
        complain(f"error: {delivery.stopping_error}")
    elif delivery.receiver_down:
        complain("error: the webhook failed every delivery; re-run to send what is left")
    return result.exit_code or (ExitCode.WORK_LEFT if stop.is_set() else ExitCode.OK)


def cmd_preview(args: argparse.Namespace) -> int:
    config = settings(args)
    # Only Jenkins: preview neither reads nor writes the ledger (nor creates it).
    jenkins = jenkins_client(config)
    try:
        payload, files = preview(make_collector(config, jenkins, None), args.job, args.build)
    finally:
        jenkins.close()
    if config.sei.channel != "plugin":
        output.print_json(payload)
        return ExitCode.OK
    # The plugin channel: the json part as the receiver reads it, and the zip beside it.
    assert files is not None  # the plugin channel's collector reads them
    summary = json.loads(files.summary)
    logs = {str(item["node"]): str(item["name"]) for item in summary["logs"]}
    output.print_json(plugin.plugin_payload(payload, logs))
    complain(
        f"json part: request_type {plugin.REQUEST_TYPE}, the payload above encoded as a string"
    )
    if files.data is None:
        complain("file part: none (no failed step, no test report)")
        return ExitCode.OK
    complain(f"file part: complete-data-temp-{args.build}.zip, {len(files.data)} bytes:")
    for name, size in plugin.zip_entries(files.data):
        complain(f"  {name}  {size} bytes")
    if args.out is not None:
        try:
            args.out.write_bytes(files.data)
        except OSError as exc:
            raise UsageError(f"--out {args.out}: cannot be written ({exc.strerror})") from None
        complain(f"zip written to {args.out}")
    return ExitCode.OK


DEMO_GUID = "3f2b8c1e-0d4a-4c55-9e1b-7a6f5d4c3b2a"


def _demo_config(sim: Simulator, receiver: Receiver, ledger_url: str) -> dict[str, Any]:
    return {
        "jenkins": {"url": sim.url, "username": sim.username, "api_token": sim.api_token},
        "sei": {
            "url": receiver.url,
            "token": "demo-token",
            "instance_guid": DEMO_GUID,
            "instance_name": "Demo Jenkins",
        },
        "mapping": {"cd_jobs": ["platform/deploy-*"]},
        "ledger": {"url": ledger_url},
    }


DEMO_NEW_BUILD_SECONDS = 20.0
"""demo --serve: a build of the demo's Pipeline finishes this often, for the daemon to deliver."""


def _demo_serve(args: argparse.Namespace) -> int:
    """The simulator and the receiver on fixed loopback ports until Ctrl-C, and a config that
    points at them on stdout (the instructions go to stderr: ``> demo.yaml`` keeps the config)."""
    sim, receiver = (
        Simulator(root_url="https://jenkins.internal.example/"),
        Receiver(instances={DEMO_GUID}),
    )
    sim.address, receiver.address = ("127.0.0.1", args.jenkins_port), ("127.0.0.1", args.sei_port)
    stop = threading.Event()
    with ExitStack() as resources:
        for server, option in ((sim, "--jenkins-port"), (receiver, "--sei-port")):
            try:
                resources.enter_context(server)
            except OSError as exc:
                raise UsageError(
                    f"{option} {server.address[1]}: cannot listen there ({exc.strerror or exc}); "
                    "choose another port"
                ) from None
        demo_instance(sim, to_epoch_ms(now()))
        # One refusal, so that the status page and `ledger list` have a dead row to show (and
        # `ledger retry` something to retry): the receiver answers its first POST with a 400.
        receiver.then(
            DemoReply(
                400, '{"error":"the demo receiver refuses its first build, to show a dead row"}'
            )
        )
        config = _demo_config(sim, receiver, "sqlite:///harvester-demo.db")
        config["harvest"] = {"interval_seconds": 10, "since": "7d"}
        config["server"] = {"listen": "127.0.0.1:9465"}
        say(yaml_text(config))
        complain(
            f"Jenkins simulator at {sim.url}, webhook receiver at {receiver.url}; a new build "
            f"finishes every {DEMO_NEW_BUILD_SECONDS:.0f} s.\n"
            "In another terminal, with the config above saved as demo.yaml "
            "(harvester demo --serve > demo.yaml does that):\n"
            "  harvester --config demo.yaml run        # the daemon\n"
            "then open http://127.0.0.1:9465/ (the status page), or\n"
            "  harvester --config demo.yaml ledger list\n"
            "The receiver refuses its first build (400), so that a dead row shows; "
            "`harvester --config demo.yaml ledger retry --dead` sends it again.\n"
            "Ctrl-C stops the simulator and the receiver."
        )
        with stop_on_signals(stop):
            while not stop.wait(DEMO_NEW_BUILD_SECONDS):
                demo_new_build(sim, to_epoch_ms(now()))
    return ExitCode.OK


def cmd_demo(args: argparse.Namespace) -> int:
    configure_logging(args.log_level or "WARNING", "text")
    if args.serve:
        return _demo_serve(args)
    moment = now()
    with (
        Simulator(root_url="https://jenkins.internal.example/") as sim,
        Receiver(instances={DEMO_GUID}) as receiver,
        tempfile.TemporaryDirectory(prefix="harvester-demo-") as workdir,
    ):
        demo_instance(sim, to_epoch_ms(moment))
        config = settings_from_mapping(_demo_config(sim, receiver, f"sqlite:///{workdir}/demo.db"))
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
