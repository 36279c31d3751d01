"""Delivery claims read their batch off two partial indexes of the rows still to deliver (in claim order, and
the rows held for quiet hours), instead of sorting every undelivered row at each claim.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TO_SEND = "delivered_at IS NULL AND failed_at IS NULL"


def upgrade() -> None:
    for name, columns, where in (("ix_outbox_claim", ["channel", "urgent", "next_attempt_at", "id"], "IS NULL"),
                                 ("ix_outbox_held", ["channel", "id"], "IS NOT NULL")):
        clause = sa.text(f"{TO_SEND} AND held_until {where}")
        op.create_index(name, "outboxmessage", columns, unique=False, sqlite_where=clause, postgresql_where=clause)


def downgrade() -> None:
    op.drop_index("ix_outbox_held", table_name="outboxmessage")
    op.drop_index("ix_outbox_claim", table_name="outboxmessage")
