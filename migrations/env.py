"""Alembic environment: always run by harvester.ledger.migrate with an open connection (never standalone)."""

from alembic import context

from harvester.ledger.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - guard against running `alembic` by hand
    raise SystemExit("run migrations with `harvester db upgrade`, which supplies the connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds tables for future migrations.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
