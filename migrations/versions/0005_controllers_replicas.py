"""Several controllers and replicas on one ledger: every build row, cursor, held
number, note and cycle belongs to a controller (``jenkins.name``), and ``replicas`` registers each
running process with a heartbeat on the database's clock.

Rows written before this revision get the controller ``''``: the first process that opens the
ledger with a controller adopts them (``Ledger.adopt``), so a 0.1 ledger upgrades in place with
nothing lost and nothing sent again.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_CONTROLLER = sa.String(255)


def _controller_column() -> sa.Column[str]:
    return sa.Column("controller", _CONTROLLER, nullable=False, server_default="")


def _rebuild(
    name: str,
    columns: list[sa.Column[object]],
    primary_key: list[str],
    copy: str,
    *,
    named: bool = True,
) -> None:
    """Replace a table whose primary key changes: the portable way (SQLite cannot alter a
    primary key in place). Downgrades leave the key unnamed, as revision 0001 did: PostgreSQL
    keeps a constraint's name when its table is renamed, so the old name is still taken."""
    key = sa.PrimaryKeyConstraint(*primary_key, name=f"pk_{name}" if named else None)
    op.create_table(f"{name}_new", *columns, key)
    op.execute(f"INSERT INTO {name}_new SELECT {copy} FROM {name}")  # noqa: S608 (constants)
    op.drop_table(name)
    op.rename_table(f"{name}_new", name)


def upgrade() -> None:
    with op.batch_alter_table("builds") as batch:
        batch.add_column(_controller_column())
        batch.drop_constraint("uq_builds_job_number_started", type_="unique")
        batch.create_unique_constraint(
            "uq_builds_controller_job_number_started", ["controller", "job", "number", "started_at"]
        )
        batch.drop_index("ix_builds_job")
        batch.create_index("ix_builds_job", ["controller", "job", "number"])
        batch.drop_index("ix_builds_claim")
        batch.create_index(
            "ix_builds_claim",
            ["controller", "status", "started_at", "id", "next_attempt_at", "claimed_until"],
        )
    with op.batch_alter_table("cycles") as batch:
        batch.add_column(_controller_column())
    _rebuild(
        "job_cursors",
        [
            _controller_column(),
            sa.Column("job", sa.String(1024), nullable=False),
            sa.Column("last_number", sa.Integer(), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        ],
        ["controller", "job"],
        "'', job, last_number, updated_at",
    )
    _rebuild(
        "held_builds",
        [
            _controller_column(),
            sa.Column("job", sa.String(1024), nullable=False),
            sa.Column("number", sa.Integer(), nullable=False),
            sa.Column("held_since", sa.DateTime(timezone=True), nullable=False),
        ],
        ["controller", "job", "number"],
        "'', job, number, held_since",
    )
    _rebuild(
        "notes",
        [
            _controller_column(),
            sa.Column("key", sa.String(64), nullable=False),
            sa.Column("value", sa.Text(), nullable=False),
        ],
        ["controller", "key"],
        "'', key, value",
    )
    op.create_table(
        "replicas",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("controller", _CONTROLLER, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("process", sa.String(255), nullable=False),
        sa.Column("interval_seconds", sa.Float(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_replicas_controller", "replicas", ["controller", "heartbeat_at"])


def downgrade() -> None:
    op.drop_index("ix_replicas_controller", table_name="replicas")
    op.drop_table("replicas")
    _rebuild(
        "notes",
        [
            sa.Column("key", sa.String(64), nullable=False),
            sa.Column("value", sa.Text(), nullable=False),
        ],
        ["key"],
        "key, value",
        named=False,
    )
    _rebuild(
        "held_builds",
        [
            sa.Column("job", sa.String(1024), nullable=False),
            sa.Column("number", sa.Integer(), nullable=False),
            sa.Column("held_since", sa.DateTime(timezone=True), nullable=False),
        ],
        ["job", "number"],
        "job, number, held_since",
        named=False,
    )
    _rebuild(
        "job_cursors",
        [
            sa.Column("job", sa.String(1024), nullable=False),
            sa.Column("last_number", sa.Integer(), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        ],
        ["job"],
        "job, last_number, updated_at",
        named=False,
    )
    with op.batch_alter_table("cycles") as batch:
        batch.drop_column("controller")
    with op.batch_alter_table("builds") as batch:
        batch.drop_index("ix_builds_claim")
        batch.create_index(
            "ix_builds_claim", ["status", "started_at", "id", "next_attempt_at", "claimed_until"]
        )
        batch.drop_index("ix_builds_job")
        batch.create_index("ix_builds_job", ["job", "number"])
        batch.drop_constraint("uq_builds_controller_job_number_started", type_="unique")
        batch.create_unique_constraint(
            "uq_builds_job_number_started", ["job", "number", "started_at"]
        )
        batch.drop_column("controller")
