"""Indexes for the paged reads: pending escalations most overdue first (open tasks by deadline) and
escalations newest first, so a page is read from an index walk instead of sorting the whole history.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_task_status_due", "task", ["status", "due_at"], unique=False)
    op.create_index("ix_escalation_fired", "escalation", ["fired_at", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_escalation_fired", table_name="escalation")
    op.drop_index("ix_task_status_due", table_name="task")
