"""What every part of the ledger shares: the engine, the dialect, and how a read or a write
transaction is opened."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from harvester.errors import LedgerUnavailable
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
            _unavailable_as_error(),
            self._engine.connect().execution_options(harvester_readonly=True) as connection,
            connection.begin(),
        ):
            yield connection

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with _unavailable_as_error(), self._engine.begin() as connection:
            yield connection


def database_reason(exc: SQLAlchemyError) -> str:
    """The driver's first line of an error, short: what went wrong, not SQLAlchemy's wrapping."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return text if len(text) < 200 else text[:200] + "..."


@contextmanager
def _unavailable_as_error() -> Iterator[None]:
    """A database that went away (or a disk that filled) is an expected condition: one clear
    message, no traceback. The transaction rolled back: nothing half-written."""
    try:
        yield
    except OperationalError as exc:
        raise LedgerUnavailable(
            f"ledger: the database cannot be used ({database_reason(exc)})",
            hint="check that it is up and reachable (ledger.url) and has space; nothing was lost, "
            "the next cycle goes on where this one stopped",
        ) from None
