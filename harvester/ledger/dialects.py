"""The seam between SQLite and PostgreSQL: every statement or setting that differs between the two
is chosen here, once, when the ledger is opened. A new strategy for one database (a lock, an upsert,
a claim query) is a method of :class:`Dialect` with one implementation per backend.

SQLite from several threads needs three things, or writers fail with "database is locked": WAL (readers
never block the writer), ``busy_timeout`` (wait for the lock instead of failing), and write
transactions that take the write lock up front with ``BEGIN IMMEDIATE`` (a deferred transaction that
reads and then writes can deadlock against another and fail at once, whatever the timeout).
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Select, create_engine, event, func, make_url, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from harvester.errors import ConfigError, LedgerError

SQLITE_BUSY_TIMEOUT_MS = 30_000
# pg_advisory_xact_lock's key for migrations: any constant, the same in every harvester.
MIGRATION_LOCK_KEY = 0x68617276  # "harv"


class Dialect:
    """What differs between the backends. Subclasses: :class:`Sqlite`, :class:`Postgresql`."""

    name = "base"

    def create_engine(self, url: str, connections: int = 10, password: str | None = None) -> Engine:
        """``connections``: how many this process may use at once (PostgreSQL's pool);
        ``password``: PostgreSQL's, when it is not in ``url`` (ledger.password_file)."""
        raise NotImplementedError

    def insert(self, table: Any) -> Any:
        """An INSERT that supports ``on_conflict_do_*``."""
        raise NotImplementedError

    def greatest(self, left: Any, right: Any) -> Any:
        raise NotImplementedError

    def minute(self, moment: Any) -> Any:
        """``moment``'s UTC minute as text, ``YYYY-MM-DD HH:MM`` (the status page's chart)."""
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

    @contextmanager
    def migrating(self, engine: Engine) -> Iterator[Connection]:
        """A transaction that only one process at a time holds, for migrations: any number of
        processes may start at once on an empty database."""
        raise NotImplementedError
        yield  # pragma: no cover

    def hold_daemon_lock(self, engine: Engine) -> Callable[[], None]:
        """Refuse a second daemon where replicas cannot work (SQLite); returns the release."""
        return lambda: None

    def clock(self, connection: Connection) -> datetime:
        """The database's clock, for leases and heartbeats: replicas on hosts whose
        clocks disagree still agree on who holds what."""
        raise NotImplementedError


class Sqlite(Dialect):
    name = "sqlite"

    def create_engine(self, url: str, connections: int = 10, password: str | None = None) -> Engine:
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
            options = connection.get_execution_options()
            if options.get("harvester_readonly"):
                connection.exec_driver_sql("BEGIN")
            elif options.get("harvester_exclusive"):
                connection.exec_driver_sql("BEGIN EXCLUSIVE")
            else:
                connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine

    def insert(self, table: Any) -> Any:
        return sqlite.insert(table)

    def exists(self, url: str) -> bool:
        database = make_url(url).database
        return database is not None and database not in ("", ":memory:") and Path(database).exists()

    def where(self, url: str) -> Path | None:
        """The file a SQLite ledger is (or will be) in; None in memory."""
        database = make_url(url).database
        return None if database in (None, "", ":memory:") else Path(database)

    def greatest(self, left: Any, right: Any) -> Any:
        return func.max(left, right)  # SQLite's two-argument max() is a scalar function

    def minute(self, moment: Any) -> Any:
        return func.strftime("%Y-%m-%d %H:%M", moment)  # stored as UTC text already

    @contextmanager
    def migrating(self, engine: Engine) -> Iterator[Connection]:
        with engine.connect() as connection:
            raw = connection.connection.dbapi_connection
            assert raw is not None
            # Off for the migration, and set outside a transaction (inside, it is a no-op): a
            # table rebuilt by a migration is dropped, and with foreign keys on, dropping
            # ``builds`` would cascade to every row's delivery history.
            raw.execute("PRAGMA foreign_keys=OFF")
            try:
                with connection.execution_options(harvester_exclusive=True).begin():
                    yield connection
                    problems = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if problems:
                        raise LedgerError(
                            f"ledger: a migration broke {len(problems)} reference(s); "
                            "nothing was changed",
                            hint="report this with the ledger's schema version "
                            "(harvester db upgrade --help)",
                        )
            finally:
                raw.execute("PRAGMA foreign_keys=ON")

    def hold_daemon_lock(self, engine: Engine) -> Callable[[], None]:
        # An OS lock beside the file, not a row: a daemon killed with SIGKILL releases it at
        # once, so `docker restart` is never refused. SQLite serves one host, so it is seen by
        # every process that can open the file.
        path = Path(f"{engine.url.database}.daemon-lock")
        try:
            handle = path.open("a+", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                "ledger.url",
                f"cannot create {path} ({exc.strerror or exc}): the daemon keeps a lock file "
                "beside the SQLite ledger; make its directory writable by this user",
            ) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise ConfigError(
                "ledger.url",
                f"another harvester daemon ({holder}) already runs on this SQLite ledger; "
                "two daemons on one SQLite file are refused. For replicas, use a PostgreSQL "
                "ledger (postgresql+psycopg://...); catch-up, ledger and check may run beside "
                "the daemon",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        return handle.close  # closing the file releases the lock

    def clock(self, connection: Connection) -> datetime:
        # SQLite serves one host: its clock is this host's.
        return datetime.now(tz=UTC)


class Postgresql(Dialect):
    name = "postgresql"

    def create_engine(self, url: str, connections: int = 10, password: str | None = None) -> Engine:
        # No process may make another wait for long: a session idle inside a
        # transaction (a replica paused by SIGSTOP mid-write) is ended by the server after 10 s,
        # releasing its locks; a network cut is noticed by TCP keepalives within about 10 s,
        # and a connection attempt gives up after 10 s. No transaction waits on anything else.
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_size=connections,
            max_overflow=connections,
            pool_timeout=10,
            connect_args={
                "connect_timeout": 10,
                "keepalives": 1,
                "keepalives_idle": 5,
                "keepalives_interval": 2,
                "keepalives_count": 3,
                "tcp_user_timeout": 10_000,
                "options": "-c idle_in_transaction_session_timeout=10000",
                **({} if password is None else {"password": password}),
            },
        )

    def insert(self, table: Any) -> Any:
        return postgresql.insert(table)

    def greatest(self, left: Any, right: Any) -> Any:
        return func.greatest(left, right)

    def minute(self, moment: Any) -> Any:
        return func.to_char(func.timezone("UTC", moment), "YYYY-MM-DD HH24:MI")

    def claim(self, select: Select[Any]) -> Select[Any]:
        # Two replicas on one PostgreSQL ledger each take different rows instead of waiting.
        return select.with_for_update(skip_locked=True)

    def lock_row(self, select: Select[Any]) -> Select[Any]:
        return select.with_for_update()

    @contextmanager
    def migrating(self, engine: Engine) -> Iterator[Connection]:
        # PostgreSQL's DDL is transactional: the lock is held until the migration commits, and
        # the next process then sees the tables and the version it wrote.
        with engine.begin() as connection:
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
            yield connection

    def clock(self, connection: Connection) -> datetime:
        # The statement's time, not the transaction's (now()).
        value = connection.execute(text("SELECT statement_timestamp()")).scalar_one()
        assert isinstance(value, datetime)
        return value.astimezone(UTC)


def database_reason(exc: SQLAlchemyError) -> str:
    """The driver's first line of an error, short: what went wrong, not SQLAlchemy's wrapping."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return text if len(text) < 200 else text[:200] + "..."


def dialect_of(url: str) -> Dialect:
    return Sqlite() if url.startswith("sqlite") else Postgresql()


def open_engine(
    url: str, connections: int = 10, password: str | None = None
) -> tuple[Engine, Dialect]:
    """The engine for ``ledger.url`` and the dialect that goes with it."""
    dialect = dialect_of(url)
    try:
        engine = dialect.create_engine(url, connections, password)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise LedgerError(
            f"ledger.url: cannot open the ledger ({exc.__class__.__name__}: {exc})",
            hint="check the URL; PostgreSQL needs the 'postgres' extra (psycopg) installed",
        ) from None
    return engine, dialect
