"""The ledger suite runs every test against every backend (the ``ledger_url`` fixture is
parametrized over SQLite and PostgreSQL), as vdirsyncer runs one storage suite against each."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harvester.ledger import Ledger


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    """An empty, migrated ledger on each backend in turn."""
    opened = Ledger.open(ledger_url, controller="ci")
    yield opened
    opened.close()
