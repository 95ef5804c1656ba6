"""An index for the claim query: pending rows in build order, with the columns it filters on, so
claiming walks the index and stops at its LIMIT instead of reading (through each payload) and
sorting every due row first.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_builds_claim",
        "builds",
        ["status", "started_at", "id", "next_attempt_at", "claimed_until"],
    )


def downgrade() -> None:
    op.drop_index("ix_builds_claim", table_name="builds")
