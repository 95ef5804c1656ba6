"""What every part of the ledger shares: the engine, the dialect, and how a read or a write
transaction is opened."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import InternalError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from harvester.errors import LedgerError, LedgerUnavailable, NotActive
from harvester.ledger import migrate as migrations
from harvester.ledger.dialects import Dialect, database_reason
from harvester.ledger.schema import LeaseRow
from harvester.ledger.statements import CLAIM_SELECT, SELECT_ATTEMPTS

# A claimed row is not handed to another worker or replica for this long; if the process dies with
# the row claimed, it becomes due again afterwards (at worst sent twice, never lost).
CLAIM_LEASE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Fence:
    """The lease a daemon's writes are made under: refused unless the
    ledger's lease of this controller is still ``holder``'s at ``epoch``. Epoch 0 is never
    current: a standby's writes are refused."""

    holder: str
    epoch: int


class LedgerBase:
    """Thread-safe: each call uses its own connection."""

    def __init__(self, engine: Engine, dialect: Dialect, controller: str | None = None) -> None:
        self._engine = engine
        self._dialect = dialect
        # Whose rows this process reads and writes (jenkins.name). None: the
        # `ledger` commands, which see every controller's rows unless told one.
        self.controller = controller
        # A daemon's writes that matter carry its lease (None: a one-off run, not fenced).
        self.fence: Fence | None = None
        self._claim_select = dialect.claim(CLAIM_SELECT)
        self._select_attempts = dialect.lock_row(SELECT_ATTEMPTS)

    def close(self) -> None:
        self._engine.dispose()

    @property
    def dialect_name(self) -> str:
        return self._dialect.name

    def hold_daemon_lock(self) -> Callable[[], None]:
        """A second daemon on one SQLite ledger is refused: ConfigError naming
        ledger.url. Returns the release; PostgreSQL holds no lock (replicas share the work)."""
        return self._dialect.hold_daemon_lock(self._engine)

    # -- schema -------------------------------------------------------------------------------

    def upgrade(self, revision: str = "head") -> None:
        migrations.upgrade(self._engine, self._dialect, revision)

    def downgrade(self, revision: str = "base") -> None:
        migrations.downgrade(self._engine, self._dialect, revision)

    def _scoped(self, query: Any, table: Any) -> Any:
        """``query`` limited to this controller's rows; every controller's when there is none
        (the ``ledger`` commands' reads). Writes use :attr:`_me`, which requires one."""
        if self.controller is None:
            return query
        return query.where(table.controller == self.controller)

    @property
    def _me(self) -> str:
        """This process's controller: every collecting and delivering query is scoped by it."""
        if self.controller is None:
            raise LedgerError(
                "internal: the ledger was opened without a controller (jenkins.name)",
                hint="open it with Ledger.open(url, controller=...)",
            )
        return self.controller

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

    @contextmanager
    def _fenced_write(self) -> Iterator[Connection]:
        """A write transaction that commits only while this daemon's lease is current: cursor
        moves, claims, recorded outcomes. The lease row is read under a share lock, so a
        takeover waits for this (short) transaction, and this one sees a takeover that came
        first and raises NotActive."""
        fence = self.fence
        with self._write() as connection:
            if fence is not None:
                row = connection.execute(
                    select(LeaseRow.holder, LeaseRow.epoch)
                    .where(LeaseRow.controller == self._me)
                    .with_for_update(read=True)
                ).one_or_none()
                if row is None or (row.holder, row.epoch) != (fence.holder, fence.epoch):
                    raise NotActive(
                        "this replica is no longer the active one: its write was refused",
                        hint="another replica took over; this one waits as a standby",
                    )
            yield connection


@contextmanager
def _unavailable_as_error() -> Iterator[None]:
    """A database that went away (or a disk that filled) is an expected condition: one clear
    message, no traceback. The transaction rolled back: nothing half-written."""
    try:
        yield
    # A read-only database (a failover) is an InternalError; an exhausted pool, a TimeoutError.
    except (OperationalError, InternalError, PoolTimeout) as exc:
        raise LedgerUnavailable(
            f"ledger: the database cannot be used ({database_reason(exc)})",
            hint="check that it is up and reachable (ledger.url) and has space; nothing was lost, "
            "the next cycle goes on where this one stopped",
        ) from None
