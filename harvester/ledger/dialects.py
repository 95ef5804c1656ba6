"""The seam between SQLite and PostgreSQL: every statement or setting that differs between the two
is chosen here, once, when the ledger is opened. A new strategy for one database (a lock, an upsert,
a claim query) is a method of :class:`Dialect` with one implementation per backend.

SQLite from several threads needs three things, or writers fail with "database is locked": WAL (readers
never block the writer), ``busy_timeout`` (wait for the lock instead of failing), and write
transactions that take the write lock up front with ``BEGIN IMMEDIATE`` (a deferred transaction that
reads and then writes can deadlock against another and fail at once, whatever the timeout).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Select, create_engine, event, func, make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from harvester.errors import LedgerError

SQLITE_BUSY_TIMEOUT_MS = 30_000


class Dialect:
    """What differs between the backends. Subclasses: :class:`Sqlite`, :class:`Postgresql`."""

    name = "base"

    def create_engine(self, url: str) -> Engine:
        raise NotImplementedError

    def insert(self, table: Any) -> Any:
        """An INSERT that supports ``on_conflict_do_*``."""
        raise NotImplementedError

    def greatest(self, left: Any, right: Any) -> Any:
        raise NotImplementedError

    def claim(self, select: Select[Any]) -> Select[Any]:
        """The claim query as this backend runs it."""
        return select

    def exists(self, url: str) -> bool:
        """Whether the database is there already (opening a SQLite file creates it)."""
        return True

    def lock_row(self, select: Select[Any]) -> Select[Any]:
        """A read of rows about to be updated in the same transaction, locked against writers
        (SQLite's ``BEGIN IMMEDIATE`` already holds the write lock)."""
        return select


class Sqlite(Dialect):
    name = "sqlite"

    def create_engine(self, url: str) -> Engine:
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" event decide how each transaction starts (see _on_begin).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            # In WAL mode NORMAL is still crash-safe for the database; the last commits may roll
            # back on power loss, which the outbox tolerates (a build is then collected again).
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Connection) -> None:
            if connection.get_execution_options().get("harvester_readonly"):
                connection.exec_driver_sql("BEGIN")
            else:
                connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine

    def insert(self, table: Any) -> Any:
        return sqlite.insert(table)

    def exists(self, url: str) -> bool:
        database = make_url(url).database
        return database is not None and database not in ("", ":memory:") and Path(database).exists()

    def greatest(self, left: Any, right: Any) -> Any:
        return func.max(left, right)  # SQLite's two-argument max() is a scalar function


class Postgresql(Dialect):
    name = "postgresql"

    def create_engine(self, url: str) -> Engine:
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)

    def insert(self, table: Any) -> Any:
        return postgresql.insert(table)

    def greatest(self, left: Any, right: Any) -> Any:
        return func.greatest(left, right)

    def claim(self, select: Select[Any]) -> Select[Any]:
        # Two replicas on one PostgreSQL ledger each take different rows instead of waiting.
        return select.with_for_update(skip_locked=True)

    def lock_row(self, select: Select[Any]) -> Select[Any]:
        return select.with_for_update()


def dialect_of(url: str) -> Dialect:
    return Sqlite() if url.startswith("sqlite") else Postgresql()


def open_engine(url: str) -> tuple[Engine, Dialect]:
    """The engine for ``ledger.url`` and the dialect that goes with it."""
    dialect = dialect_of(url)
    try:
        engine = dialect.create_engine(url)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise LedgerError(
            f"ledger.url: cannot open the ledger ({exc.__class__.__name__}: {exc})",
            hint="check the URL; PostgreSQL needs the 'postgres' extra (psycopg) installed",
        ) from None
    return engine, dialect
