"""Schema changes through Alembic: the only module that imports it. The scripts live in the
repository's top-level ``migrations/`` and ship inside the wheel as ``harvester.migrations``."""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from harvester.errors import LedgerError
from harvester.ledger.dialects import Dialect, database_reason


def migrations_location() -> Path:
    """Where Alembic's scripts live: inside the installed package (``harvester.migrations``), or,
    when running from a source checkout that shadows the installed package, the repo's
    top-level ``migrations/``."""
    try:
        return Path(str(resources.files("harvester.migrations")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent.parent / "migrations"


def _alembic_config(connection: Connection | None) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(migrations_location()))
    config.attributes["connection"] = connection
    return config


def is_current(engine: Engine) -> bool | None:
    """None: no schema at all (a new database); True: at the newest migration; False: older."""
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    if current is None:
        return None
    head = ScriptDirectory.from_config(_alembic_config(None)).get_current_head()
    return current == head


# SQLite, processes starting together on a new file: once in CI (1 run in about 10 under load,
# never alone) a process got "database is locked" at once instead of waiting its busy timeout for
# the one migrating. Each try is one transaction, so trying again changes nothing half-way.
LOCKED_TRIES = 5


def upgrade(engine: Engine, dialect: Dialect, revision: str = "head") -> None:
    """Migrate under the dialect's lock, so any number of processes may start at once on an
    empty database: the first migrates, the others wait and then find nothing to
    do. A ledger already at ``head`` is left alone without taking the lock."""
    for attempt in range(1, LOCKED_TRIES + 1):
        try:
            if revision == "head" and is_current(engine):
                return
            with dialect.migrating(engine) as connection:
                command.upgrade(_alembic_config(connection), revision)
        except OperationalError as exc:
            reason = database_reason(exc)
            if "database is locked" in reason and attempt < LOCKED_TRIES:
                time.sleep(0.25 * attempt)
                continue
            raise LedgerError(
                f"cannot open or migrate the database ({reason})",
                hint="check ledger.url: that its directory exists and is writable"
                if dialect.name == "sqlite"
                else "check ledger.url (host, port, database, user) and the password "
                "(ledger.password_file), and that PostgreSQL is up and reachable from here",
            ) from None
        except SQLAlchemyError as exc:
            raise LedgerError(
                f"ledger: migrating the database failed ({database_reason(exc)}); nothing was "
                "changed",
                hint="run `harvester db upgrade` again; if it fails the same way, the database "
                "holds a schema this harvester does not know",
            ) from None
        else:
            return


def downgrade(engine: Engine, dialect: Dialect, revision: str = "base") -> None:
    with dialect.migrating(engine) as connection:
        command.downgrade(_alembic_config(connection), revision)
