from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harvester.demo import Receiver
from tests.helpers import GUID
from tests.pgserver import create_database, postgres_server


@pytest.fixture(scope="session")
def postgres_base() -> Iterator[str]:
    with postgres_server() as base:
        yield base


@pytest.fixture
def postgres_url(postgres_base: str) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    return create_database(postgres_base)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback expecting the token of tests.helpers.config_dict."""
    with Receiver(token="sei-secret-token", instances={GUID}) as rec:
        yield rec


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return str(request.getfixturevalue("postgres_url"))
