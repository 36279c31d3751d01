"""event.auth: how the actor of each audit event authenticated (cli, session, token, hmac, acklink, drill);
empty for the engine's own events and for events recorded before this revision.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (no batch copy): SQLite supports it, and the append-only triggers stay in place.
    op.add_column("event", sa.Column("auth", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("event") as batch:
        batch.drop_column("auth")
