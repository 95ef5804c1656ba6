"""What a collection did (the report a cycle and catch-up print) and what one page or held build
settled (the rows to write and the numbers to hold or release)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from harvester.ledger import NewBuild


@dataclass
class CollectReport:
    jobs_seen: int = 0
    jobs_scanned: int = 0
    builds_collected: int = 0
    builds_held: int = 0
    builds_skipped: int = 0
    jobs_recreated: int = 0
    job_errors: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(
        self,
        *,
        collected: int = 0,
        held: int = 0,
        scanned: int = 0,
        skipped: int = 0,
        recreated: int = 0,
    ) -> None:
        with self._lock:
            self.jobs_recreated += recreated
            self.builds_collected += collected
            self.builds_held += held
            self.jobs_scanned += scanned
            self.builds_skipped += skipped

    def error(self, job: str, message: str) -> None:
        with self._lock:
            self.job_errors[job] = message


@dataclass
class Settled:
    """What a page (or a held build) settled: rows to write, numbers to hold or release."""

    rows: list[NewBuild] = field(default_factory=list)
    hold: dict[int, str] = field(default_factory=dict)  # number -> why it is held
    unhold: list[int] = field(default_factory=list)
