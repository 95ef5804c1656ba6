"""The argument parser: every command with a one-line description and an example.
Global options are accepted before or after the subcommand (``harvester check --config c.yaml``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harvester import __version__
from harvester.cli.check import cmd_check
from harvester.cli.common import build_number, positive
from harvester.cli.harvest import cmd_catch_up, cmd_demo, cmd_preview, cmd_run
from harvester.cli.ledger import (
    cmd_config_example,
    cmd_db_upgrade,
    cmd_ledger_forget,
    cmd_ledger_jobs,
    cmd_ledger_list,
    cmd_ledger_retry,
    cmd_ledger_show,
    cmd_ledger_stats,
)
from harvester.ledger import STATUSES

Handler = Callable[[argparse.Namespace], int]
LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def _controller_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--controller",
        metavar="NAME",
        help="only this controller's rows (its jenkins.name; default: every controller's)",
    )


def _global_options(parser: argparse.ArgumentParser, *, default: Any) -> None:
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=default,
        help="config file (default: $HARVESTER_CONFIG, else ./config.yaml)",
    )
    parser.add_argument(
        "--log-level",
        metavar="LEVEL",
        type=str.upper,
        choices=LEVELS,
        default=default,
        help="overrides logging.level (DEBUG adds a line per request)",
    )


# After the subcommand the global options must not reset what was given before it: SUPPRESS.
_GLOBALS = argparse.ArgumentParser(add_help=False)
_global_options(_GLOBALS, default=argparse.SUPPRESS)


def _command(
    subparsers: Any, name: str, summary: str, example: str, handler: Handler | None = None
) -> argparse.ArgumentParser:
    """A subcommand whose help has its description and an example."""
    command: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_GLOBALS],
    )
    if handler is not None:
        command.set_defaults(handler=handler)
    return command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harvester",
        description="Ship finished Jenkins builds to an SEI custom CI/CD webhook: each build once "
        "(one in flight at a crash may be sent twice), nothing collected ever lost.",
        epilog="example:\n  harvester check --config /etc/harvester/config.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"harvester {__version__}")
    _global_options(parser, default=None)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = _command(
        commands,
        "run",
        "the long-lived daemon: a cycle (collect, then deliver) every harvest.interval_seconds",
        "harvester run --config config.yaml        (or: harvester run --once)",
        cmd_run,
    )
    run.add_argument("--once", action="store_true", help="run exactly one cycle, then exit")

    catch_up = _command(
        commands,
        "catch-up",
        "one-shot backfill of the finished builds started in a window",
        "harvester catch-up --since 30d --job 'team-a/**' --dry-run",
        cmd_catch_up,
    )
    catch_up.add_argument("--since", required=True, metavar="WHEN", help="90m, 36h, 7d or a date")
    catch_up.add_argument("--until", metavar="WHEN", help="default: now")
    catch_up.add_argument("--job", action="append", default=[], metavar="GLOB")
    catch_up.add_argument("--dry-run", action="store_true", help="print what would be sent")

    preview = _command(
        commands,
        "preview",
        "print the payload of one build; nothing is written or sent",
        "harvester preview folder/app 42",
        cmd_preview,
    )
    preview.add_argument("job", metavar="JOB")
    preview.add_argument("build", metavar="BUILD", type=build_number)
    preview.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="plugin channel: write the zip of logs and test reports to FILE",
    )

    _command(
        commands,
        "check",
        "validate the config and prove the ledger, Jenkins and the webhook, storing nothing",
        "harvester check --config config.yaml",
        cmd_check,
    )

    ledger = _command(
        commands, "ledger", "inspect and repair the sent-builds ledger", "harvester ledger stats"
    )
    actions = ledger.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)
    listing = _command(
        actions,
        "list",
        "the ledger's rows, newest first",
        "harvester ledger list --status dead --job 'team-a/**' --json",
        cmd_ledger_list,
    )
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--job", metavar="GLOB")
    listing.add_argument("--limit", type=positive, metavar="N")
    listing.add_argument("--json", action="store_true")
    listing.add_argument(
        "--wide", action="store_true", help="every column (started, sent, the last error)"
    )
    _controller_option(listing)
    show = _command(
        actions,
        "show",
        "one row with its stored payload and delivery history",
        "harvester ledger show mbp/feature%2Fx 7",
        cmd_ledger_show,
    )
    show.add_argument("job", metavar="JOB")
    show.add_argument("build", metavar="BUILD", type=build_number)
    show.add_argument("--json", action="store_true")
    show.add_argument(
        "--logs", action="store_true", help="print the logs stored to send (plugin channel)"
    )
    _controller_option(show)
    retry = _command(
        actions,
        "retry",
        "set dead rows back to pending, or make pending rows due now",
        "harvester ledger retry --dead --job 'team-a/**'",
        cmd_ledger_retry,
    )
    retry.add_argument("job", metavar="JOB", nargs="?")
    retry.add_argument("build", metavar="BUILD", nargs="?", type=build_number)
    retry.add_argument("--dead", action="store_true", help="every dead row (with --job GLOB)")
    retry.add_argument(
        "--pending", action="store_true", help="every pending row, due now (with --job GLOB)"
    )
    retry.add_argument("--job", dest="job_glob", metavar="GLOB")
    _controller_option(retry)
    forget = _command(
        actions,
        "forget",
        "delete a row so the build is collected and sent again",
        "harvester ledger forget folder/app 42",
        cmd_ledger_forget,
    )
    forget.add_argument("job", metavar="JOB")
    forget.add_argument("build", metavar="BUILD", type=build_number)
    _controller_option(forget)
    jobs = _command(
        actions,
        "jobs",
        "each job's cursor, its held builds and why each is held, its last collection",
        "harvester ledger jobs --job 'team-a/**'",
        cmd_ledger_jobs,
    )
    jobs.add_argument("--job", metavar="GLOB")
    jobs.add_argument("--json", action="store_true")
    _controller_option(jobs)
    stats = _command(
        actions,
        "stats",
        "counts by status, the oldest pending build, the last successful cycle",
        "harvester ledger stats --json",
        cmd_ledger_stats,
    )
    stats.add_argument("--json", action="store_true")
    _controller_option(stats)

    db = _command(commands, "db", "the ledger's schema", "harvester db upgrade")
    db_actions = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    _command(
        db_actions,
        "upgrade",
        "apply the ledger's migrations (every command that opens it does too)",
        "harvester db upgrade --config config.yaml",
        cmd_db_upgrade,
    )

    config = _command(commands, "config", "the configuration file", "harvester config example")
    config_actions = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    _command(
        config_actions,
        "example",
        "print the documented example config, every key with its default",
        "harvester config example > config.yaml",
        cmd_config_example,
    )

    demo = _command(
        commands,
        "demo",
        "one cycle against a bundled Jenkins simulator and webhook receiver; needs no config",
        "harvester demo\n  harvester demo --serve > demo.yaml   # then: harvester --config demo.yaml run",
        cmd_demo,
    )
    demo.add_argument(
        "--serve",
        action="store_true",
        help="keep the simulator and the receiver running on fixed ports until Ctrl-C, and print "
        "a config that points at them",
    )
    demo.add_argument("--jenkins-port", type=int, default=8080, metavar="PORT")
    demo.add_argument("--sei-port", type=int, default=8090, metavar="PORT")
    return parser
