"""Payloads in a table of their own (``build_payloads``), one row per build: a build's row changes
at every claim and delivery attempt, and SQLite writes a row whose size changed anew, its payload
(kilobytes, over overflow pages) included. Apart, those writes touch only the small row.

And ``ix_builds_status_next_attempt`` goes: since 0005 every query it served is scoped by controller
and served by ``ix_builds_claim`` (controller, status, ...), and each index on the status is one
more page written at every claim and attempt.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "build_payloads",
        sa.Column(
            "build_id",
            sa.Integer(),
            sa.ForeignKey("builds.id", ondelete="CASCADE"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("payload", sa.Text(), nullable=False),
    )
    op.execute("INSERT INTO build_payloads (build_id, payload) SELECT id, payload FROM builds")
    with op.batch_alter_table("builds") as batch:
        batch.drop_index("ix_builds_status_next_attempt")
        batch.drop_column("payload")


def downgrade() -> None:
    with op.batch_alter_table("builds") as batch:
        batch.add_column(sa.Column("payload", sa.Text(), nullable=False, server_default="{}"))
    op.execute(
        "UPDATE builds SET payload = (SELECT payload FROM build_payloads"
        " WHERE build_payloads.build_id = builds.id)"
        " WHERE EXISTS (SELECT 1 FROM build_payloads WHERE build_payloads.build_id = builds.id)"
    )
    with op.batch_alter_table("builds") as batch:
        batch.alter_column("payload", server_default=None)
        batch.create_index("ix_builds_status_next_attempt", ["status", "next_attempt_at"])
    op.drop_table("build_payloads")
