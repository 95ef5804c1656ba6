"""What every part of the ledger shares: the engine, the dialect, and how a read or a write
transaction is opened."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import Connection, Engine

from harvester.ledger import migrate as migrations
from harvester.ledger.dialects import Dialect
from harvester.ledger.statements import CLAIM_SELECT, SELECT_ATTEMPTS

# A claimed row is not handed to another worker or replica for this long; if the process dies with
# the row claimed, it becomes due again afterwards (at worst sent twice, never lost).
CLAIM_LEASE = timedelta(minutes=5)


class LedgerBase:
    """Thread-safe: each call uses its own connection."""

    def __init__(self, engine: Engine, dialect: Dialect) -> None:
        self._engine = engine
        self._dialect = dialect
        self._claim_select = dialect.claim(CLAIM_SELECT)
        self._select_attempts = dialect.lock_row(SELECT_ATTEMPTS)

    def close(self) -> None:
        self._engine.dispose()

    # -- schema -------------------------------------------------------------------------------

    def upgrade(self, revision: str = "head") -> None:
        migrations.upgrade(self._engine, revision)

    def downgrade(self, revision: str = "base") -> None:
        migrations.downgrade(self._engine, revision)

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with (
            self._engine.connect().execution_options(harvester_readonly=True) as connection,
            connection.begin(),
        ):
            yield connection

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._engine.begin() as connection:
            yield connection
