"""The command line (CONTRACT §2): the one place that wires the parts together and the one place
that turns errors into messages and exit codes."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from harvester import __version__, output
from harvester.config import Settings, config_path, load_settings
from harvester.errors import ExitCode, HarvesterError, NotFoundInLedger, UsageError
from harvester.ledger import STATUSES, Ledger
from harvester.logs import configure_logging
from harvester.names import decoded

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
        job = resolve_job(ledger, args.job)
        entry = ledger.entry(job, args.build)
        if entry is None:
            raise NotFoundInLedger(
                "the ledger holds no such build",
                job=job,
                build=args.build,
                hint="see `harvester ledger list --job GLOB` for what it holds",
            )
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
            job = resolve_job(ledger, args.job)
            entry = ledger.entry(job, args.build)
            if entry is None:
                raise NotFoundInLedger("the ledger holds no such build", job=job, build=args.build)
            if entry.status != "dead":
                say(f"{job} #{args.build} is {entry.status}, not dead: nothing to retry")
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
            raise NotFoundInLedger("the ledger holds no such build", job=job, build=args.build)
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


def _not_yet(name: str) -> int:
    complain(f"{name} is not available yet in this version")
    return ExitCode.WORK_LEFT


def cmd_run(args: argparse.Namespace) -> int:
    return _not_yet("run")


def cmd_catch_up(args: argparse.Namespace) -> int:
    return _not_yet("catch-up")


def cmd_preview(args: argparse.Namespace) -> int:
    return _not_yet("preview")


def cmd_check(args: argparse.Namespace) -> int:
    return _not_yet("check")


def cmd_demo(args: argparse.Namespace) -> int:
    return _not_yet("demo")


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
