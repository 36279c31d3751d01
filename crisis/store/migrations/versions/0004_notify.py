"""Notifications that reach people: outbox rows carry a kind and facts (rendered at delivery), urgency,
back-off, quiet-hour holds, delivery leases, failure and receipt; on-call shifts that beat the rota.

Rows queued before this revision keep their subject and body, with kind "" and not urgent.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oncallshift",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person", sa.String(), nullable=False),
        sa.Column("start", sa.DateTime(), nullable=False),
        sa.Column("until", sa.DateTime(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("note", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_oncallshift_start", "oncallshift", ["start"], unique=False)
    op.create_index("ix_oncallshift_until", "oncallshift", ["until"], unique=False)
    # plain ADD COLUMNs (SQLite supports them); NOT NULL ones get a default for the rows already there
    op.add_column("outboxmessage", sa.Column("kind", sa.String(), nullable=False, server_default=""))
    op.add_column("outboxmessage", sa.Column("urgent", sa.Boolean(), nullable=False, server_default=sa.false()))
    for name in ("next_attempt_at", "held_until", "claimed_until", "failed_at"):
        op.add_column("outboxmessage", sa.Column(name, sa.DateTime(), nullable=True))
    op.add_column("outboxmessage", sa.Column("receipt", sa.String(), nullable=True))
    op.create_index("ix_outbox_due", "outboxmessage", ["delivered_at", "failed_at", "next_attempt_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_outbox_due", table_name="outboxmessage")
    with op.batch_alter_table("outboxmessage") as batch:
        for name in ("receipt", "failed_at", "claimed_until", "held_until", "next_attempt_at", "urgent", "kind"):
            batch.drop_column(name)
    op.drop_index("ix_oncallshift_until", table_name="oncallshift")
    op.drop_index("ix_oncallshift_start", table_name="oncallshift")
    op.drop_table("oncallshift")
