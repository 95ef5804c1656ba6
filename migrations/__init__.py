"""Alembic migrations of the ledger; installed as ``harvester.migrations`` (see pyproject.toml)."""
