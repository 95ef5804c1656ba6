"""Printing for people (rich tables on a terminal) and for scripts (``--json``, plain lines)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
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
from harvester.ledger import DeliveryAttempt, LedgerEntry, LedgerStats
from harvester.util.timeparse import iso_utc


def say(text: str) -> None:
    """A line for the user on stdout (results of a command)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def complain(text: str) -> None:
    """A line for the user on stderr (errors and warnings)."""
    sys.stderr.write(f"harvester: {text}\n")
    sys.stderr.flush()


def entry_as_json(entry: LedgerEntry) -> dict[str, Any]:
    """The ``ledger list --json`` object (CONTRACT §2: these keys at least)."""
    return {
        "controller": entry.controller,
        "job": entry.job,
        "build": entry.number,
        "status": entry.status,
        "result": entry.result,
        "attempts": entry.attempts,
        "started_at": iso_utc(entry.started_at),
        "collected_at": iso_utc(entry.collected_at),
        "sent_at": iso_utc(entry.sent_at),
        "next_attempt_at": iso_utc(entry.next_attempt_at) if entry.status == "pending" else None,
        "last_error": entry.last_error,
        "last_http_status": entry.last_http_status,
    }


def console(stream: TextIO | None = None) -> Console:
    out = stream or sys.stdout
    # Piped into grep or a file, a table must not be cut to 80 columns: let it be as wide as it is.
    width = None if out.isatty() else 10_000
    return Console(file=out, highlight=False, soft_wrap=True, width=width)


def print_json(value: Any, stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    out.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    out.flush()


def print_entries(entries: Sequence[LedgerEntry], *, as_json: bool) -> None:
    if as_json:
        print_json([entry_as_json(entry) for entry in entries])
        return
    out = console()
    if not entries:
        out.print("The ledger holds no builds that match.")
        return
    table = Table(
        "controller",
        "job",
        "build",
        "status",
        "result",
        "attempts",
        "started",
        "sent",
        "last error",
    )
    for entry in entries:
        table.add_row(
            entry.controller,
            entry.job,
            str(entry.number),
            entry.status,
            entry.result or "",
            str(entry.attempts),
            iso_utc(entry.started_at) or "",
            iso_utc(entry.sent_at) or "",
            (entry.last_error or "")[:80],
        )
    out.print(table)


def entry_detail(entry: LedgerEntry, history: Sequence[DeliveryAttempt]) -> dict[str, Any]:
    detail = entry_as_json(entry)
    detail["payload"] = json.loads(entry.payload)
    detail["history"] = [
        {
            "attempted_at": iso_utc(attempt.attempted_at),
            "outcome": attempt.outcome,
            "http_status": attempt.http_status,
            "error": attempt.error,
            "duration_ms": attempt.duration_ms,
        }
        for attempt in history
    ]
    return detail


def print_entry(entry: LedgerEntry, history: Sequence[DeliveryAttempt], *, as_json: bool) -> None:
    detail = entry_detail(entry, history)
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


def stats_json(stats: LedgerStats) -> dict[str, Any]:
    return {
        "counts": stats.counts,
        "total": sum(stats.counts.values()),
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
