"""Held build numbers per job, and ``skipped`` rows: a build's key is (job, number, start time), so
that a number reused by a re-created job can be recorded beside the old job's build. And notes: what
the last run was configured with (``harvest.since``), to tell the user when it changed.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("builds") as batch:
        batch.drop_constraint("uq_builds_job_number", type_="unique")
        batch.create_unique_constraint(
            "uq_builds_job_number_started", ["job", "number", "started_at"]
        )
    op.create_table(
        "held_builds",
        sa.Column("job", sa.String(1024), primary_key=True),
        sa.Column("number", sa.Integer(), primary_key=True),
        sa.Column("held_since", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "notes",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("notes")
    op.drop_table("held_builds")
    with op.batch_alter_table("builds") as batch:
        batch.drop_constraint("uq_builds_job_number_started", type_="unique")
        batch.create_unique_constraint("uq_builds_job_number", ["job", "number"])
