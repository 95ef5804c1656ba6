"""The ``ledger`` and ``db`` commands: inspect and repair the sent-builds ledger."""

from __future__ import annotations

import argparse
import sys
from importlib import resources

from harvester.app import now, open_ledger
from harvester.cli import output
from harvester.cli.common import ledger_settings
from harvester.cli.output import say
from harvester.errors import ExitCode, NotFoundInLedger, UsageError
from harvester.ledger import Ledger, LedgerEntry
from harvester.util.names import decoded, glob_match
from harvester.util.urls import mask


def resolve_job(ledger: Ledger, job: str) -> str:
    """JOB as Jenkins prints it, or its decoded form where that is unambiguous."""
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


def entry_of(ledger: Ledger, job: str, build: int) -> LedgerEntry:
    """The row of JOB BUILD as the user typed them, or NotFoundInLedger."""
    job = resolve_job(ledger, job)
    entry = ledger.entry(job, build)
    if entry is None:
        raise _not_in_ledger(job, build)
    return entry


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    loaded = ledger_settings(args)
    open_ledger(loaded).close()
    say(f"ledger at {mask(loaded.ledger.url)} is up to date")
    return ExitCode.OK


def cmd_ledger_list(args: argparse.Namespace) -> int:
    ledger = open_ledger(ledger_settings(args), args.controller)
    try:
        entries = ledger.entries(status=args.status, job_glob=args.job, limit=args.limit)
        output.print_entries(entries, as_json=args.json, wide=args.wide)
    finally:
        ledger.close()
    return ExitCode.OK


def cmd_ledger_show(args: argparse.Namespace) -> int:
    ledger = open_ledger(ledger_settings(args), args.controller)
    try:
        entry = entry_of(ledger, args.job, args.build)
        output.print_entry(
            entry,
            ledger.history(entry.id),
            as_json=args.json,
            files=ledger.files_data(entry.id) if entry.files_summary is not None else None,
            logs=args.logs,
        )
    finally:
        ledger.close()
    return ExitCode.OK


def cmd_ledger_retry(args: argparse.Namespace) -> int:
    """``dead`` rows back to ``pending``; ``--pending`` (or a pending JOB BUILD): due now."""
    chosen = int(args.dead) + int(args.pending) + int(args.job is not None)
    if chosen != 1:
        raise UsageError(
            "ledger retry takes one of JOB BUILD, --dead or --pending",
            hint="e.g. `harvester ledger retry folder/app 42` or `harvester ledger retry --dead`",
        )
    if args.job is not None and args.build is None:
        raise UsageError("ledger retry JOB needs a BUILD number too")
    if args.job_glob is not None and args.job is not None:
        raise UsageError("--job GLOB goes with --dead or --pending")
    ledger = open_ledger(ledger_settings(args), args.controller)
    try:
        if args.job is not None:
            entry = entry_of(ledger, args.job, args.build)
            if entry.status == "pending":
                ledger.make_due([entry.id], now())
                say(f"{entry.job} #{entry.number} is pending: due now, the next cycle sends it")
                return ExitCode.OK
            if entry.status != "dead":
                say(f"{entry.job} #{entry.number} is {entry.status}, not dead: nothing to retry")
                return ExitCode.OK
            ids = [entry.id]
        else:
            status = "dead" if args.dead else "pending"
            ids = ledger.ids(status, args.job_glob)
        if args.pending:
            count = ledger.make_due(ids, now())
            say(f"{count} pending build(s) due now; the next cycle sends them")
            return ExitCode.OK
        count = ledger.retry(ids, now())
    finally:
        ledger.close()
    say(f"{count} dead build(s) set back to pending; the next cycle delivers them")
    return ExitCode.OK


def cmd_ledger_forget(args: argparse.Namespace) -> int:
    ledger = open_ledger(ledger_settings(args), args.controller)
    try:
        job = resolve_job(ledger, args.job)
        if not ledger.forget(job, args.build, now()):
            raise _not_in_ledger(job, args.build)
    finally:
        ledger.close()
    say(f"forgot {job} #{args.build}; the next cycle collects and sends it again")
    return ExitCode.OK


def cmd_ledger_jobs(args: argparse.Namespace) -> int:
    ledger = open_ledger(ledger_settings(args), args.controller)
    try:
        names = None
        if args.job is not None:
            names = [name for name in ledger.job_names() if glob_match(args.job, name)]
        output.print_jobs(ledger.job_summaries(names, last_collected=True), as_json=args.json)
    finally:
        ledger.close()
    return ExitCode.OK


def cmd_ledger_stats(args: argparse.Namespace) -> int:
    ledger = open_ledger(ledger_settings(args), args.controller)
    try:
        output.print_stats(ledger.stats(), as_json=args.json)
    finally:
        ledger.close()
    return ExitCode.OK


def cmd_config_example(args: argparse.Namespace) -> int:
    """The documented example config, as shipped in the package."""
    sys.stdout.write(
        resources.files("harvester").joinpath("config.example.yaml").read_text("utf-8")
    )
    return ExitCode.OK
