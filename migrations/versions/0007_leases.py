"""One active replica per controller: ``leases`` holds, per controller, the
replica that holds the lease, its epoch (it grows at every takeover) and when the lease expires on
the database's clock. The job list the replicas used to share (a ``notes`` row, ``discovery``)
goes: every cycle asks Jenkins itself.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("controller", sa.String(255), nullable=False),
        sa.Column("holder", sa.String(36), nullable=True),
        sa.Column("epoch", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("controller", name="pk_leases"),
    )
    op.execute("DELETE FROM notes WHERE key = 'discovery'")


def downgrade() -> None:
    op.drop_table("leases")
