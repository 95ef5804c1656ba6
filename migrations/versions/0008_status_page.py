"""What the status page and ``ledger jobs`` show: why each build is held (``held_builds.reason``),
a build forgotten by the operator until it is collected again (``forgotten_builds``: the new row's
history then says so), an index on when attempts were made (the 24-hour chart), and one on the
builds' order (the status page's pages of every status); and ``build_files``, the plugin
channel's zip of logs and test reports beside a build's payload, with what it holds.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("held_builds") as batch:
        batch.add_column(sa.Column("reason", sa.Text(), nullable=True))
    op.create_table(
        "forgotten_builds",
        sa.Column("controller", sa.String(255), nullable=False, server_default=""),
        sa.Column("job", sa.String(1024), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("forgotten_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("controller", "job", "number", name="pk_forgotten_builds"),
    )
    op.create_index("ix_delivery_attempts_time", "delivery_attempts", ["attempted_at"])
    op.create_index("ix_builds_started", "builds", ["controller", "started_at", "id"])
    op.create_table(
        "build_files",
        sa.Column("build_id", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["build_id"], ["builds.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("build_id"),
    )


def downgrade() -> None:
    op.drop_table("build_files")
    op.drop_index("ix_builds_started", table_name="builds")
    op.drop_index("ix_delivery_attempts_time", table_name="delivery_attempts")
    op.drop_table("forgotten_builds")
    with op.batch_alter_table("held_builds") as batch:
        batch.drop_column("reason")
