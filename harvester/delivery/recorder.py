"""Group commit of delivery outcomes, without widening what a crash can send twice.

Each delivery worker records its answer and waits until it is committed before it starts another
POST, exactly as with one transaction per answer: a build is "in flight" from its POST until its
outcome is committed, so a crash re-sends at most ``sei.max_concurrency`` builds (CONTRACT §5).
What changes is who commits. The first worker to arrive writes every answer waiting at that
moment in one transaction (the leader); workers whose answers arrive meanwhile wait for the next
one, which a leader among them writes as soon as the first commit ends. Under load the answers
that arrive during one commit share the next; alone, a worker commits its own at once.

Measured (bench/RESULTS.md, issue 14): one write transaction per delivery was the largest part
of the catch-up's CPU after the two HTTP calls; most of it is per transaction (BEGIN, COMMIT, the
pool, GIL hand-offs), not per row.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harvester.ledger import AttemptRecord


@dataclass
class _Waiting:
    record: AttemptRecord
    status: str | None = None
    error: BaseException | None = None


class GroupRecorder:
    """``record(r)`` writes ``r`` through ``write`` (a ledger's ``record_attempts``), sharing a
    transaction with the answers of other threads that arrive while one is being written.
    Returns the row's new status; raises what the write raised (then none of its batch is
    written, and each of their workers handles it as before: one build's failure)."""

    def __init__(self, write: Callable[[Sequence[AttemptRecord]], list[str]]) -> None:
        self._write = write
        self._ready = threading.Condition()
        self._queue: list[_Waiting] = []
        self._writing = False
        self.transactions = 0  # for the benchmark's breakdown and the tests
        self.records = 0

    def record(self, record: AttemptRecord) -> str:
        mine = _Waiting(record)
        with self._ready:
            self._queue.append(mine)
            while self._writing and mine.status is None and mine.error is None:
                self._ready.wait()
            if mine.status is None and mine.error is None:
                # Nobody is writing and this answer is not written yet: lead, taking every
                # answer queued so far.
                self._writing = True
                batch, self._queue = self._queue, []
            else:
                batch = []
        if batch:
            self._lead(batch)
        if mine.error is not None:
            raise mine.error
        assert mine.status is not None
        return mine.status

    def _lead(self, batch: list[_Waiting]) -> None:
        try:
            statuses = self._write([waiting.record for waiting in batch])
        except BaseException as exc:  # noqa: BLE001 - each worker of the batch gets it, as its own write's
            for waiting in batch:
                waiting.error = exc
        else:
            for waiting, status in zip(batch, statuses, strict=True):
                waiting.status = status
        with self._ready:
            self.transactions += 1
            self.records += len(batch)
            self._writing = False
            self._ready.notify_all()
