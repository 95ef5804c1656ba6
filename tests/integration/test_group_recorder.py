"""Group commit of delivery outcomes (harvester.delivery.recorder), on a real SQLite ledger:
answers that arrive while one transaction is being written share the next; nobody returns
before their own is written, so a crash can re-send only builds in flight."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harvester.attempt import Attempt
from harvester.delivery.recorder import GroupRecorder
from harvester.ledger import AttemptRecord, Ledger, NewBuild

NOW = datetime(2026, 12, 3, tzinfo=UTC)


class HeldBackLedger:
    """A real ledger whose first write waits until the test lets it go, and whose writes fail
    while ``fail`` is set; it records which rows each transaction wrote."""

    def __init__(self, path: Path) -> None:
        self.ledger = Ledger.open(f"sqlite:///{path}", controller="ci")
        self.ledger.add_pending(
            [NewBuild("job", n, "SUCCESS", "{}", NOW) for n in range(1, 6)], now=NOW
        )
        self.ids = [entry.id for entry in self.ledger.claim_due(NOW, 10, "worker")]
        self.batches: list[list[int]] = []
        self.first_started = threading.Event()
        self.let_first_finish = threading.Event()
        self.fail = False

    def answer(self, index: int) -> AttemptRecord:
        return AttemptRecord(self.ids[index], Attempt("sent", 202, None, 1), NOW, 10, "worker")

    def status(self, index: int) -> str:
        entry = self.ledger.entry("job", index + 1)
        assert entry is not None
        return entry.status

    def record_attempts(self, records: Sequence[AttemptRecord]) -> list[str]:
        if not self.batches:
            self.first_started.set()
            assert self.let_first_finish.wait(5)
        self.batches.append([self.ids.index(r.entry_id) for r in records])
        if self.fail:
            raise RuntimeError("database is locked")
        return self.ledger.record_attempts(records)


@pytest.fixture
def held(tmp_path: Path) -> Iterator[HeldBackLedger]:
    ledger = HeldBackLedger(tmp_path / "ledger.db")
    yield ledger
    ledger.ledger.close()


def test_answers_arriving_during_a_commit_share_the_next_and_wait_for_it(
    held: HeldBackLedger,
) -> None:
    recorder = GroupRecorder(held.record_attempts)
    returned: dict[int, tuple[str, str]] = {}

    def record(index: int) -> None:
        status = recorder.record(held.answer(index))
        returned[index] = (status, held.status(index))  # written before it returned?

    first = threading.Thread(target=record, args=(0,))
    first.start()
    assert held.first_started.wait(5)
    others = [threading.Thread(target=record, args=(n,)) for n in (1, 2, 3)]
    for thread in others:
        thread.start()
    while len(recorder._queue) < 3:  # all three wait behind the first commit
        threading.Event().wait(0.01)
    assert returned == {}
    assert held.status(1) == "pending"
    held.let_first_finish.set()
    for thread in [first, *others]:
        thread.join(5)
    assert held.batches[0] == [0]
    assert sorted(held.batches[1]) == [1, 2, 3]
    assert (recorder.transactions, recorder.records) == (2, 4)
    assert returned == dict.fromkeys((0, 1, 2, 3), ("sent", "sent"))


def test_a_failed_write_fails_every_answer_of_its_batch_and_the_next_still_leads(
    held: HeldBackLedger,
) -> None:
    held.let_first_finish.set()
    held.fail = True
    recorder = GroupRecorder(held.record_attempts)
    with pytest.raises(RuntimeError, match="locked"):
        recorder.record(held.answer(0))
    assert held.status(0) == "pending"
    held.fail = False
    assert recorder.record(held.answer(1)) == "sent"
    assert held.batches == [[0], [1]]
