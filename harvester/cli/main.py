"""The command line (CONTRACT §2): the argument parser, and the one place that turns errors into
messages and exit codes (:func:`main`). The commands themselves are in :mod:`.harvest` and
:mod:`.ledger`; the parts they use are built by :mod:`harvester.app`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from harvester import __version__
from harvester.cli.common import build_number, positive
from harvester.cli.harvest import cmd_catch_up, cmd_check, cmd_demo, cmd_preview, cmd_run
from harvester.cli.ledger import (
    cmd_db_upgrade,
    cmd_ledger_forget,
    cmd_ledger_list,
    cmd_ledger_retry,
    cmd_ledger_show,
    cmd_ledger_stats,
)
from harvester.cli.output import complain
from harvester.errors import ExitCode, HarvesterError
from harvester.ledger import STATUSES
from harvester.util.logs import configure_logging

log = logging.getLogger("harvester")

Handler = Callable[[argparse.Namespace], int]


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
    preview.add_argument("build", metavar="BUILD", type=build_number)
    preview.set_defaults(handler=cmd_preview)

    check = commands.add_parser("check", help="validate the config and reach Jenkins and webhook")
    check.set_defaults(handler=cmd_check)

    ledger = commands.add_parser("ledger", help="inspect and repair the sent-builds ledger")
    ledger_commands = ledger.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)
    listing = ledger_commands.add_parser("list", help="rows, newest first")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--job", metavar="GLOB")
    listing.add_argument("--limit", type=positive, metavar="N")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_ledger_list)
    show = ledger_commands.add_parser("show", help="one row with payload and delivery history")
    show.add_argument("job", metavar="JOB")
    show.add_argument("build", metavar="BUILD", type=build_number)
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_ledger_show)
    retry = ledger_commands.add_parser(
        "retry", help="set dead rows back to pending, or make pending rows due now"
    )
    retry.add_argument("job", metavar="JOB", nargs="?")
    retry.add_argument("build", metavar="BUILD", nargs="?", type=build_number)
    retry.add_argument("--dead", action="store_true", help="every dead row (with --job GLOB)")
    retry.add_argument(
        "--pending", action="store_true", help="every pending row, due now (with --job GLOB)"
    )
    retry.add_argument("--job", dest="job_glob", metavar="GLOB")
    retry.set_defaults(handler=cmd_ledger_retry)
    forget = ledger_commands.add_parser("forget", help="delete a row so the build is sent again")
    forget.add_argument("job", metavar="JOB")
    forget.add_argument("build", metavar="BUILD", type=build_number)
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Until the config is read, log at the requested level in text; the settings reconfigure it.
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
