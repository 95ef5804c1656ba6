"""Group commit of delivery outcomes (harvester.delivery.recorder): answers that arrive while one
transaction is being written share the next; nobody returns before their own is written, so a
crash can re-send only builds in flight."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from harvester.attempt import Attempt
from harvester.delivery.recorder import GroupRecorder
from harvester.ledger import AttemptRecord

NOW = datetime(2026, 12, 3, tzinfo=UTC)


def answer(entry_id: int) -> AttemptRecord:
    return AttemptRecord(entry_id, Attempt("sent", 202, None, 1), NOW, 10, "worker")


class SlowLedger:
    """Writes batches; the first one waits until the test lets it finish."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.written: set[int] = set()
        self.first_started = threading.Event()
        self.let_first_finish = threading.Event()
        self.fail = False

    def record_attempts(self, records: Sequence[AttemptRecord]) -> list[str]:
        if not self.batches:
            self.first_started.set()
            assert self.let_first_finish.wait(5)
        self.batches.append([r.entry_id for r in records])
        if self.fail:
            raise RuntimeError("database is locked")
        self.written.update(r.entry_id for r in records)
        return ["sent"] * len(records)


def test_answers_arriving_during_a_commit_share_the_next_and_wait_for_it() -> None:
    ledger = SlowLedger()
    recorder = GroupRecorder(ledger.record_attempts)
    returned: dict[int, tuple[str, bool]] = {}

    def record(entry_id: int) -> None:
        status = recorder.record(answer(entry_id))
        returned[entry_id] = (status, entry_id in ledger.written)  # written before returning?

    first = threading.Thread(target=record, args=(1,))
    first.start()
    assert ledger.first_started.wait(5)
    others = [threading.Thread(target=record, args=(n,)) for n in (2, 3, 4)]
    for thread in others:
        thread.start()
    while len(recorder._queue) < 3:  # all three are waiting behind the first commit
        threading.Event().wait(0.01)
    assert returned == {}
    ledger.let_first_finish.set()
    for thread in [first, *others]:
        thread.join(5)
    assert ledger.batches[0] == [1]
    assert sorted(ledger.batches[1]) == [2, 3, 4]
    assert (recorder.transactions, recorder.records) == (2, 4)
    assert returned == dict.fromkeys((1, 2, 3, 4), ("sent", True))


def test_a_failed_write_fails_every_answer_of_its_batch_and_the_next_still_leads() -> None:
    ledger = SlowLedger()
    ledger.let_first_finish.set()
    ledger.fail = True
    recorder = GroupRecorder(ledger.record_attempts)
    with pytest.raises(RuntimeError, match="locked"):
        recorder.record(answer(1))
    ledger.fail = False
    assert recorder.record(answer(2)) == "sent"
    assert ledger.batches == [[1], [2]]
