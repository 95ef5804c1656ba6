"""Printing for people (rich tables on a terminal) and for scripts (``--json``, plain lines)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichBar
from rich.table import Table

from harvester.catchup import Progress, progress_counts
from harvester.collect.report import CollectReport
from harvester.delivery.deliverer import DeliveryReport
from harvester.ledger import DeliveryAttempt, JobSummary, LedgerEntry, LedgerStats
from harvester.sei.plugin import zip_entries, zip_logs
from harvester.util.timeparse import age, iso_utc


def say(text: str) -> None:
    """A line for the user on stdout (results of a command)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def complain(text: str) -> None:
    """A line for the user on stderr (errors and warnings)."""
    sys.stderr.write(f"harvester: {text}\n")
    sys.stderr.flush()


def entry_as_json(entry: LedgerEntry) -> dict[str, Any]:
    """The ``ledger list --json`` object (these keys at least)."""
    return entry.as_json()


def console(stream: TextIO | None = None) -> Console:
    out = stream or sys.stdout
    # Piped into grep or a file, a table must not be cut to 80 columns: let it be as wide as it is.
    width = None if out.isatty() else 10_000
    return Console(file=out, highlight=False, soft_wrap=True, width=width)


def print_json(value: Any, stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    out.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    out.flush()


def print_entries(
    entries: Sequence[LedgerEntry],
    *,
    as_json: bool,
    wide: bool = False,
    now: datetime | None = None,
) -> None:
    """The ledger's rows. On a terminal, a table that fits it: job, build, status, result, age,
    attempts, the job's name cut with an ellipsis if need be (``wide``: every column, whole,
    the last error too); the controller only when the rows span several. Piped: the same columns
    as tab-separated text, a header line first."""
    if as_json:
        print_json([entry_as_json(entry) for entry in entries])
        return
    out = console()
    if not entries:
        out.print("The ledger holds no builds that match.")
        return
    now = now or datetime.now(tz=UTC)
    several = len({entry.controller for entry in entries}) > 1
    columns = ["job", "build", "status", "result", "age", "attempts"]
    if wide:
        columns = ["job", "build", "status", "result", "attempts", "started", "sent", "last error"]
    if several:
        columns.insert(0, "controller")
    rows = []
    for entry in entries:
        values = {
            "controller": entry.controller,
            "job": entry.job,
            "build": str(entry.number),
            "status": entry.status,
            "result": entry.result or "",
            "age": age(entry.started_at, now),
            "attempts": str(entry.attempts),
            "started": iso_utc(entry.started_at, "seconds") or "",
            "sent": iso_utc(entry.sent_at, "seconds") or "",
            # One line: an error that wraps over six makes the table unreadable.
            "last error": " ".join((entry.last_error or "").split()),
        }
        rows.append([values[column] for column in columns])
    print_table(columns, rows, wide=wide)


def print_table(columns: list[str], rows: list[list[str]], *, wide: bool = False) -> None:
    """On a terminal, a table that fits it, names and errors cut with an ellipsis (``wide``:
    every column whole); piped, tab-separated text with a header line."""
    if not sys.stdout.isatty():
        say("\t".join(columns))
        for row in rows:
            say("\t".join(row))
        return
    # --wide: every column whole, however wide the lines (as piped output is).
    out = console() if wide else Console(file=sys.stdout, highlight=False)
    room = 10_000 if wide else out.width
    table = Table(box=None, pad_edge=False)
    for column, width in zip(columns, _widths(columns, rows, room), strict=True):
        table.add_column(column, width=width, no_wrap=True, overflow="ellipsis")
    for row in rows:
        table.add_row(*row)
    out.print(table)


def print_jobs(jobs: Sequence[JobSummary], *, as_json: bool, now: datetime | None = None) -> None:
    """``ledger jobs``: each job's cursor, held numbers and why, and its last collection."""
    if as_json:
        print_json(
            [
                {
                    "controller": job.controller,
                    "job": job.job,
                    "cursor": job.cursor,
                    "cursor_moved_at": iso_utc(job.cursor_moved_at),
                    "held": [h.as_json() for h in job.held],
                    "last_collected_at": iso_utc(job.last_collected_at),
                }
                for job in jobs
            ]
        )
        return
    if not jobs:
        console().print("The ledger follows no jobs yet: run a cycle first.")
        return
    now = now or datetime.now(tz=UTC)
    columns = ["job", "cursor", "last collected", "held (why)"]
    if len({job.controller for job in jobs}) > 1:
        columns.insert(0, "controller")
    rows = []
    for job in jobs:
        values = {
            "controller": job.controller,
            "job": job.job,
            "cursor": "" if job.cursor is None else f"#{job.cursor}",
            "last collected": age(job.last_collected_at, now)
            + (" ago" if job.last_collected_at else ""),
            "held (why)": "; ".join(
                f"#{h.number} {' '.join((h.reason or 'no reason recorded').split())}"
                for h in job.held
            ),
        }
        rows.append([values[column] for column in columns])
    print_table(columns, rows)


FLEXIBLE = ("job", "last error", "controller", "held (why)")


def _widths(columns: list[str], rows: list[list[str]], room: int) -> list[int]:
    """Each column's width within ``room``: the short ones as wide as their widest value; the
    names and the error share what is left (cut with an ellipsis), the job name most of it."""
    natural = [max(len(column), *(len(row[i]) for row in rows)) for i, column in enumerate(columns)]
    left = (
        room
        - 2 * (len(columns) - 1)
        - sum(
            width for width, column in zip(natural, columns, strict=True) if column not in FLEXIBLE
        )
    )
    flexible = [i for i, column in enumerate(columns) if column in FLEXIBLE]
    wanted = sum(natural[i] for i in flexible)
    if wanted <= left:
        return natural
    widths = list(natural)
    shares = {"job": 3.0, "last error": 2.0, "held (why)": 2.0, "controller": 1.0}
    total = sum(shares[columns[i]] for i in flexible)
    for i in flexible:
        widths[i] = max(min(natural[i], int(left * shares[columns[i]] / total)), 8)
    return widths


def entry_detail(
    entry: LedgerEntry, history: Sequence[DeliveryAttempt], files: bytes | None = None
) -> dict[str, Any]:
    """The row, its payload and history, and (``files``: the plugin channel's zip) what goes
    beside the payload."""
    detail = entry_as_json(entry)
    detail["payload"] = json.loads(entry.payload)
    detail["history"] = [attempt.as_json() for attempt in history]
    if entry.files_summary is not None:
        detail["files"] = {
            **json.loads(entry.files_summary),
            "zip_entries": [
                {"name": name, "bytes": size}
                for name, size in (zip_entries(files) if files else [])
            ],
        }
    return detail


def print_files(files: dict[str, Any], out: Console) -> None:
    """What the plugin channel sends beside the payload: logs and test counts."""
    out.print("\nsent beside the payload (plugin channel):")
    for item in files.get("logs", []):
        out.print(
            f"  log {item['name']}: node {item['node'] or '(the build)'} "
            f"{item['step']!r}, {item['bytes']} bytes"
        )
    for key, what in (
        ("logs_missing", "without a log in Jenkins"),
        ("logs_dropped", "over 5 MiB, dropped"),
    ):
        if files.get(key):
            out.print(f"  {files[key]} failed node(s) {what}")
    tests = files.get("tests")
    if tests:
        out.print(
            f"  tests: {tests['passed']} passed, {tests['failed']} failed, {tests['skipped']} "
            f"skipped in {tests['files']} suite file(s)"
            + (f"; {tests['duplicates']} repeated, sent once" if tests["duplicates"] else "")
            + (
                f"; suites over the size cap, not sent: {', '.join(tests['suites_dropped'])}"
                if tests["suites_dropped"]
                else ""
            )
        )
        for name in tests["failing"]:
            out.print(f"    failing: {name}")
    if not files.get("logs") and not tests:
        out.print("  nothing (no failed step, no test report)")


def print_entry(
    entry: LedgerEntry,
    history: Sequence[DeliveryAttempt],
    *,
    as_json: bool,
    files: bytes | None = None,
    logs: bool = False,
) -> None:
    detail = entry_detail(entry, history, files)
    if logs and files:
        detail["logs"] = zip_logs(files)
    if as_json:
        print_json(detail)
        return
    out = console()
    table = Table(show_header=False, box=None)
    for key in (
        "controller",
        "job",
        "build",
        "status",
        "result",
        "attempts",
        "started_at",
        "collected_at",
        "sent_at",
        "next_attempt_at",
        "last_http_status",
        "last_error",
    ):
        value = detail[key]
        table.add_row(key, "" if value is None else str(value))
    out.print(table)
    out.print("\npayload:")
    out.print_json(entry.payload)
    out.print("\ndelivery history:")
    if not history:
        out.print("  (no delivery attempt yet)")
    for attempt in detail["history"]:
        status = attempt["http_status"] if attempt["http_status"] is not None else "-"
        error = f" {attempt['error']}" if attempt["error"] else ""
        out.print(
            f"  {attempt['attempted_at']} {attempt['outcome']} HTTP {status} "
            f"{attempt['duration_ms']} ms{error}"
        )
    if "files" in detail:
        print_files(detail["files"], out)
    for name, text in detail.get("logs", {}).items():
        out.print(f"\n--- log {name} ---", markup=False)
        out.print(text, markup=False, highlight=False)


def stats_json(stats: LedgerStats) -> dict[str, Any]:
    return {
        "counts": stats.counts,
        "total": sum(stats.counts.values()),
        "held": stats.held,
        "oldest_pending_started_at": iso_utc(stats.oldest_pending_started_at),
        "last_successful_cycle_at": iso_utc(stats.last_successful_cycle_at),
        "controllers": stats.by_controller,
    }


def print_stats(stats: LedgerStats, *, as_json: bool) -> None:
    data = stats_json(stats)
    if as_json:
        print_json(data)
        return
    out = console()
    table = Table(show_header=False, box=None)
    for status, count in data["counts"].items():
        table.add_row(status, str(count))
    table.add_row("total", str(data["total"]))
    table.add_row("held back", f"{data['held']} (running, or details not loaded; re-checked)")
    table.add_row("oldest pending", data["oldest_pending_started_at"] or "-")
    table.add_row("last successful cycle", data["last_successful_cycle_at"] or "never")
    out.print(table)
    for controller, counts in stats.by_controller.items():
        shown = ", ".join(f"{status} {count}" for status, count in counts.items())
        out.print(f"controller {controller or '(not yet adopted)'}: {shown}")


class BarProgress(Progress):
    """catch-up's progress bar on a terminal: jobs scanned, builds collected, delivered, failed,
    rate and ETA (by jobs scanned)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.bar = RichBar(
            TextColumn("jobs"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(file=stream or sys.stderr),
            transient=False,
        )
        self.task = self.bar.add_task("catch-up", total=0, counts="")
        self.started = 0.0

    def start(self, jobs: int) -> None:
        self.started = time.monotonic()
        self.bar.update(self.task, total=jobs)
        self.bar.start()

    def update(self, collect: CollectReport, delivery: DeliveryReport) -> None:
        counts = progress_counts(collect, delivery, time.monotonic() - self.started)
        self.bar.update(self.task, completed=collect.jobs_scanned, counts=counts)

    def finish(self, collect: CollectReport, delivery: DeliveryReport) -> None:
        self.update(collect, delivery)
        self.bar.stop()
