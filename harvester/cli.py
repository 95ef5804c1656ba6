"""The command line (CONTRACT §2): the one place that wires the parts together and the one place
that turns errors into messages and exit codes."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime

from harvester import __version__, output
from harvester.catchup import LogProgress, Progress, catch_up
from harvester.config import Settings, config_path, load_settings, settings_from_mapping
from harvester.cycle import CycleResult, Harvester, claim_owner_alive, make_collector
from harvester.errors import (
    ExitCode,
    HarvesterError,
    NotFoundInLedger,
    UsageError,
)
from harvester.jenkins import JenkinsClient
from harvester.ledger import STATUSES, Ledger, LedgerEntry
from harvester.logs import configure_logging
from harvester.metrics import Metrics
from harvester.names import decoded
from harvester.receiver import Receiver
from harvester.scheduler import run_forever
from harvester.server import StatusServer
from harvester.simulator import Simulator, demo_instance
from harvester.timeparse import iso_utc, resolve_when, to_epoch_ms
from harvester.webhook import WebhookClient

log = logging.getLogger("harvester")

Handler = Callable[[argparse.Namespace], int]


def say(text: str) -> None:
    """A line for the user on stdout (results of a command)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def complain(text: str) -> None:
    """A line for the user on stderr (errors and warnings)."""
    sys.stderr.write(f"harvester: {text}\n")
    sys.stderr.flush()


def _now() -> datetime:
    return datetime.now(tz=UTC)


def _build_number(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"BUILD must be a build number, got {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"BUILD must be 1 or more, got {number}")
    return number


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {number}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harvester",
        description="Ship finished Jenkins builds to an SEI custom CI/CD webhook, exactly once.",
    )
    parser.add_argument("--version", action="version", version=f"harvester {__version__}")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $HARVESTER_CONFIG, else ./config.yaml)",
    )
    parser.add_argument(
        "--log-level",
        metavar="LEVEL",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        help="overrides logging.level",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser("run", help="the long-lived daemon (or one cycle with --once)")
    run.add_argument("--once", action="store_true", help="run exactly one cycle, then exit")
    run.set_defaults(handler=cmd_run)

    catch_up = commands.add_parser("catch-up", help="one-shot backfill of a window of builds")
    catch_up.add_argument("--since", required=True, metavar="WHEN")
    catch_up.add_argument("--until", metavar="WHEN")
    catch_up.add_argument("--job", action="append", default=[], metavar="GLOB")
    catch_up.add_argument("--dry-run", action="store_true", help="print what would be sent")
    catch_up.set_defaults(handler=cmd_catch_up)

    preview = commands.add_parser("preview", help="print the payload of one build")
    preview.add_argument("job", metavar="JOB")
    preview.add_argument("build", metavar="BUILD", type=_build_number)
    preview.set_defaults(handler=cmd_preview)

    check = commands.add_parser("check", help="validate the config and reach Jenkins and webhook")
    check.set_defaults(handler=cmd_check)

    ledger = commands.add_parser("ledger", help="inspect and repair the sent-builds ledger")
    ledger_commands = ledger.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)
    listing = ledger_commands.add_parser("list", help="rows, newest first")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--job", metavar="GLOB")
    listing.add_argument("--limit", type=_positive, metavar="N")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_ledger_list)
    show = ledger_commands.add_parser("show", help="one row with payload and delivery history")
    show.add_argument("job", metavar="JOB")
    show.add_argument("build", metavar="BUILD", type=_build_number)
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_ledger_show)
    retry = ledger_commands.add_parser("retry", help="set dead rows back to pending")
    retry.add_argument("job", metavar="JOB", nargs="?")
    retry.add_argument("build", metavar="BUILD", nargs="?", type=_build_number)
    retry.add_argument("--dead", action="store_true", help="every dead row (with --job GLOB)")
    retry.add_argument("--job", dest="job_glob", metavar="GLOB")
    retry.set_defaults(handler=cmd_ledger_retry)
    forget = ledger_commands.add_parser("forget", help="delete a row so the build is sent again")
    forget.add_argument("job", metavar="JOB")
    forget.add_argument("build", metavar="BUILD", type=_build_number)
    forget.set_defaults(handler=cmd_ledger_forget)
    stats = ledger_commands.add_parser("stats", help="counts by status, oldest pending, last cycle")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(handler=cmd_ledger_stats)

    db = commands.add_parser("db", help="ledger schema")
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    upgrade = db_commands.add_parser("upgrade", help="apply migrations")
    upgrade.set_defaults(handler=cmd_db_upgrade)

    demo = commands.add_parser("demo", help="one cycle against a bundled Jenkins simulator")
    demo.set_defaults(handler=cmd_demo)
    return parser


# -- wiring ------------------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(config_path(args.config))
    configure_logging(args.log_level or settings.logging.level, settings.logging.format)
    return settings


def _open_ledger(settings: Settings) -> Ledger:
    # Every command that opens the ledger migrates it first (CONTRACT §2, db upgrade).
    return Ledger.open(settings.ledger.url, migrate=True)


def _open_ledger_for_delivery(settings: Settings) -> Ledger:
    ledger = _open_ledger(settings)
    released = ledger.release_dead_claims(claim_owner_alive, _now())
    if released:
        log.info(
            "%d build(s) claimed by a previous run that stopped mid-delivery are due again",
            released,
        )
    return ledger


def resolve_job(ledger: Ledger, job: str) -> str:
    """JOB as Jenkins prints it, or its decoded form where that is unambiguous (CONTRACT §2)."""
    known = ledger.jobs()
    if job in known:
        return job
    candidates = sorted(name for name in known if decoded(name) == job)
    if len(candidates) == 1:
        return candidates[0]
    if len(candidates) > 1:
        raise UsageError(
            f"JOB {job!r} is ambiguous",
            hint=f"name it as Jenkins prints it, one of: {', '.join(candidates)}",
        )
    return job


def _not_in_ledger(job: str, build: int) -> NotFoundInLedger:
    return NotFoundInLedger(
        "the ledger holds no such build",
        job=job,
        build=build,
        hint="see `harvester ledger list --job GLOB` for what it holds",
    )


def _entry(ledger: Ledger, job: str, build: int) -> LedgerEntry:
    """The row of JOB BUILD as the user typed them, or NotFoundInLedger."""
    job = resolve_job(ledger, job)
    entry = ledger.entry(job, build)
    if entry is None:
        raise _not_in_ledger(job, build)
    return entry


# -- ledger and db commands --------------------------------------------------------------------


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    settings = _settings(args)
    ledger = _open_ledger(settings)
    ledger.close()
    say(f"ledger at {_safe_url(settings.ledger.url)} is up to date")
    return ExitCode.OK


def _safe_url(url: str) -> str:
    """The ledger URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        rest = f"{user}:***@{host}"
    return f"{scheme}{sep}{rest}"


def cmd_ledger_list(args: argparse.Namespace) -> int:
    ledger = _open_ledger(_settings(args))
    try:
        entries = ledger.entries(status=args.status, job_glob=args.job, limit=args.limit)
        output.print_entries(entries, as_json=args.json)
    finally:
        ledger.close()
    return ExitCode.OK


def cmd_ledger_show(args: argparse.Namespace) -> int:
    ledger = _open_ledger(_settings(args))
    try:
        entry = _entry(ledger, args.job, args.build)
        output.print_entry(entry, ledger.history(entry.id), as_json=args.json)
    finally:
        ledger.close()
    return ExitCode.OK


def cmd_ledger_retry(args: argparse.Namespace) -> int:
    if args.dead == (args.job is not None):
        raise UsageError(
            "ledger retry takes either JOB BUILD or --dead",
            hint="e.g. `harvester ledger retry folder/app 42` or `harvester ledger retry --dead`",
        )
    if args.job is not None and args.build is None:
        raise UsageError("ledger retry JOB needs a BUILD number too")
    if args.job_glob is not None and not args.dead:
        raise UsageError("--job GLOB goes with --dead")
    ledger = _open_ledger(_settings(args))
    try:
        if args.dead:
            ids = [e.id for e in ledger.entries(status="dead", job_glob=args.job_glob)]
        else:
            entry = _entry(ledger, args.job, args.build)
            if entry.status != "dead":
                say(f"{entry.job} #{entry.number} is {entry.status}, not dead: nothing to retry")
                return ExitCode.OK
            ids = [entry.id]
        count = ledger.retry(ids, _now())
    finally:
        ledger.close()
    say(f"{count} dead build(s) set back to pending; the next cycle delivers them")
    return ExitCode.OK


def cmd_ledger_forget(args: argparse.Namespace) -> int:
    ledger = _open_ledger(_settings(args))
    try:
        job = resolve_job(ledger, args.job)
        if not ledger.forget(job, args.build, _now()):
            raise _not_in_ledger(job, args.build)
    finally:
        ledger.close()
    say(f"forgot {job} #{args.build}; the next cycle collects and sends it again")
    return ExitCode.OK


def cmd_ledger_stats(args: argparse.Namespace) -> int:
    ledger = _open_ledger(_settings(args))
    try:
        output.print_stats(ledger.stats(), as_json=args.json)
    finally:
        ledger.close()
    return ExitCode.OK


# -- harvest and delivery commands -------------------------------------------------------------


def _jenkins_client(settings: Settings, metrics: Metrics | None = None) -> JenkinsClient:
    return JenkinsClient(
        settings.jenkins.url,
        settings.jenkins.username,
        settings.jenkins.token.get_secret_value(),
        timeout=settings.jenkins.timeout_seconds,
        verify_tls=settings.jenkins.verify_tls,
        max_concurrency=settings.jenkins.max_concurrency,
        observer=None if metrics is None else metrics.observe_jenkins,
    )


def _webhook_client(settings: Settings) -> WebhookClient:
    return WebhookClient(
        settings.sei.url,
        settings.sei.secret.get_secret_value(),
        auth_scheme=settings.sei.auth_scheme,
        timeout=settings.sei.timeout_seconds,
        max_concurrency=settings.sei.max_concurrency,
    )


def build_harvester(settings: Settings, stop: threading.Event) -> Harvester:
    """Wire the parts from the settings: the one place clients and engines are created."""
    metrics = Metrics()
    jenkins = _jenkins_client(settings, metrics)
    webhook = _webhook_client(settings)
    ledger = _open_ledger_for_delivery(settings)
    return Harvester(settings, jenkins, webhook, ledger, metrics, _now, stop)


def close_harvester(harvester: Harvester) -> None:
    harvester.jenkins.close()
    harvester.webhook.close()
    harvester.ledger.close()


class Health:
    """What /healthz reports: healthy while the last cycle succeeded within three intervals."""

    def __init__(self, interval_seconds: float) -> None:
        self.interval = interval_seconds
        self.started = _now()
        self.last_success: datetime | None = None
        self.last_problem: str | None = "no cycle has finished yet"
        self.lock = threading.Lock()

    def record(self, result: CycleResult) -> None:
        with self.lock:
            if result.succeeded:
                self.last_success = result.finished_at
                self.last_problem = None
            else:
                self.last_problem = result.summary()

    def __call__(self) -> tuple[bool, dict[str, object]]:
        with self.lock:
            now = _now()
            limit = 3 * self.interval
            reference = self.last_success
            fresh = reference is not None and (now - reference).total_seconds() <= limit
            # Just started: give the first cycles the same grace before calling it unhealthy.
            starting = reference is None and (now - self.started).total_seconds() <= limit
            detail: dict[str, object] = {
                "status": "ok" if fresh or starting else "unhealthy",
                "last_success": iso_utc(reference),
                "problem": self.last_problem,
            }
            if not (fresh or starting):
                detail["reason"] = f"no successful cycle in the last {limit:.0f} s" + (
                    f"; last problem: {self.last_problem}" if self.last_problem else ""
                )
            return fresh or starting, detail


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    stop = threading.Event()
    harvester = build_harvester(settings, stop)
    try:
        if args.once:
            return harvester.run_cycle().exit_code
        health = Health(settings.harvest.interval_seconds)
        server = None
        if settings.server.address is not None:
            server = StatusServer(settings.server.address, harvester.metrics, health).start()
            log.info("serving /healthz and /metrics on %s", settings.server.listen)

        def cycle() -> None:
            health.record(harvester.run_cycle())

        log.info(
            "harvesting %s every %.0f s into %s",
            settings.jenkins.url,
            settings.harvest.interval_seconds,
            _safe_url(settings.ledger.url),
        )
        try:
            run_forever(cycle, interval_seconds=settings.harvest.interval_seconds, stop=stop)
        finally:
            if server is not None:
                server.stop()
        return ExitCode.OK
    finally:
        close_harvester(harvester)


def cmd_catch_up(args: argparse.Namespace) -> int:
    now = _now()
    try:
        since = resolve_when(args.since, now)
        until = resolve_when(args.until, now) if args.until else now
    except ValueError as exc:
        raise UsageError(f"--since/--until: {exc}") from None
    if since >= until:
        raise UsageError(f"--since ({iso_utc(since)}) must be before --until ({iso_utc(until)})")
    settings = _settings(args)
    progress: Progress = output.BarProgress() if sys.stderr.isatty() else LogProgress()
    with ExitStack() as resources:
        sink = None
        deliverer = None
        if args.dry_run:
            # It reads the ledger to skip what it holds, but writes nothing: no claims released.
            jenkins = _jenkins_client(settings)
            resources.callback(jenkins.close)
            ledger = _open_ledger(settings)
            resources.callback(ledger.close)
            collector = make_collector(settings, jenkins, ledger, clock=_now)

            def sink(payload: dict[str, object]) -> None:
                say(json.dumps(payload, ensure_ascii=False))

        else:
            harvester = build_harvester(settings, threading.Event())
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
    settings = _settings(args)
    # Only Jenkins: preview neither reads nor writes the ledger (nor creates it).
    jenkins = _jenkins_client(settings)
    try:
        payload = make_collector(settings, jenkins, None, clock=_now).preview(args.job, args.build)
    finally:
        jenkins.close()
    output.print_json(json.loads(payload.to_json()))
    return ExitCode.OK


def cmd_check(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args)
    except HarvesterError as exc:
        say(f"FAIL config: {exc}")
        raise
    say(f"ok   config: {config_path(args.config)}")
    # Jenkins and the webhook only: checking must not create or migrate the ledger.
    jenkins, webhook = _jenkins_client(settings), _webhook_client(settings)
    failures = 0
    code = ExitCode.OK
    try:
        try:
            version = jenkins.version()
            user = jenkins.whoami()
            say(
                f"ok   jenkins: {settings.jenkins.url} answers (Jenkins {version or 'version unknown'}"
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
    now = _now()
    with (
        Simulator(root_url="https://jenkins.internal.example/") as sim,
        Receiver() as receiver,
        tempfile.TemporaryDirectory(prefix="harvester-demo-") as workdir,
    ):
        demo_instance(sim, to_epoch_ms(now))
        settings = settings_from_mapping(
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
        harvester = build_harvester(settings, threading.Event())
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


# -- the edge ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Until the config is read, log at the requested level in text; _settings() reconfigures.
    configure_logging(args.log_level or "INFO", "text")
    handler: Handler = args.handler
    try:
        return handler(args)
    except HarvesterError as exc:
        complain(f"error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        complain("interrupted")
        return 130
    except Exception:  # the CLI edge: anything unexpected is a bug, reported with its traceback
        log.exception("unexpected error; please report it with this traceback")
        return ExitCode.WORK_LEFT


def entry_point() -> None:
    sys.exit(main())
