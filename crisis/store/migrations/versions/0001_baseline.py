"""Baseline: the schema as it stood when migrations began (incidents, tasks, escalations, the append-only
audit timeline, statements, the outbox, accounts, sessions, API tokens, login throttling, idempotency keys).

Column types are the plain SQL ones the models' types store into (UTC times as naive DATETIME / TIMESTAMP,
text as VARCHAR), so this file never changes when a Python-side type does.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_PG_FUNCTION = (
    "CREATE OR REPLACE FUNCTION crisis_event_append_only() RETURNS trigger AS $$ "
    "BEGIN RAISE EXCEPTION 'the audit timeline is append-only'; END; $$ LANGUAGE plpgsql")
_PG_TRIGGERS = (
    "CREATE TRIGGER event_append_only BEFORE UPDATE OR DELETE ON event "
    "FOR EACH ROW EXECUTE FUNCTION crisis_event_append_only()",
    # TRUNCATE skips row triggers: without this one it would empty the timeline
    "CREATE TRIGGER event_no_truncate BEFORE TRUNCATE ON event "
    "FOR EACH STATEMENT EXECUTE FUNCTION crisis_event_append_only()",
)
_SQLITE_TRIGGERS = (
    "CREATE TRIGGER event_no_update BEFORE UPDATE ON event "
    "BEGIN SELECT RAISE(ABORT, 'the audit timeline is append-only'); END",
    "CREATE TRIGGER event_no_delete BEFORE DELETE ON event "
    "BEGIN SELECT RAISE(ABORT, 'the audit timeline is append-only'); END",
)


def _append_only_audit() -> None:
    """The audit timeline refuses UPDATE, DELETE (and TRUNCATE on PostgreSQL) in the database itself."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        for ddl in _PG_TRIGGERS:
            op.execute(ddl)
    else:
        for ddl in _SQLITE_TRIGGERS:
            op.execute(ddl)


def upgrade() -> None:
    op.create_table("account",
        sa.Column("person_id", sa.String(), nullable=False),
        sa.Column("password_hash", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("person_id")
    )
    op.create_table("apitoken",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("token_hash", sa.String(), nullable=False),
        sa.Column("prefix", sa.String(), nullable=False),
        sa.Column("person_id", sa.String(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash")
    )
    op.create_index("ix_apitoken_name", "apitoken", ["name"], unique=False)
    op.create_table("idempotencykey",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("request_hash", sa.String(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key")
    )
    op.create_table("incident",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("source_url", sa.String(), nullable=True),
        sa.Column("signals", sa.JSON(), nullable=False),
        sa.Column("stage", sa.String(), nullable=False),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("decision", sa.String(), nullable=True),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("opened_by", sa.String(), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("stage_entered_at", sa.DateTime(), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.Column("playbook_version", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("cycle_started_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id")
    )
    op.create_index("ix_incident_category", "incident", ["category"], unique=False)
    op.create_index("ix_incident_stage", "incident", ["stage"], unique=False)
    op.create_table("loginsession",
        sa.Column("token_hash", sa.String(), nullable=False),
        sa.Column("person_id", sa.String(), nullable=False),
        sa.Column("csrf_token", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("client", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("token_hash")
    )
    op.create_index("ix_loginsession_person_id", "loginsession", ["person_id"], unique=False)
    op.create_table("loginthrottle",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key")
    )
    op.create_table("outboxmessage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dedupe_key", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("body", sa.String(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedupe_key")
    )
    op.create_index("ix_outboxmessage_delivered_at", "outboxmessage", ["delivered_at"], unique=False)
    op.create_index("ix_outboxmessage_incident_id", "outboxmessage", ["incident_id"], unique=False)
    op.create_table("event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("from_state", sa.String(), nullable=True),
        sa.Column("to_state", sa.String(), nullable=True),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"], ),
        sa.PrimaryKeyConstraint("id")
    )
    op.create_index("ix_event_at", "event", ["at"], unique=False)
    op.create_index("ix_event_incident_id", "event", ["incident_id"], unique=False)
    op.create_table("statement",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("body", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("major", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("drafted_by", sa.String(), nullable=False),
        sa.Column("drafted_at", sa.DateTime(), nullable=False),
        sa.Column("released_at", sa.DateTime(), nullable=True),
        sa.Column("released_by", sa.String(), nullable=True),
        sa.Column("next_update", sa.String(), nullable=True),
        sa.Column("reviews", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"], ),
        sa.PrimaryKeyConstraint("id")
    )
    op.create_index("ix_statement_incident_id", "statement", ["incident_id"], unique=False)
    op.create_table("task",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("group", sa.String(), nullable=False),
        sa.Column("title_zh", sa.String(), nullable=False),
        sa.Column("title_en", sa.String(), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("assignee", sa.String(), nullable=False),
        sa.Column("anchor", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("done_at", sa.DateTime(), nullable=True),
        sa.Column("done_by", sa.String(), nullable=True),
        sa.Column("note", sa.String(), nullable=True),
        sa.Column("escalation_plan", sa.JSON(), nullable=False),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("next_escalation_at", sa.DateTime(), nullable=True),
        sa.Column("acked_at", sa.DateTime(), nullable=True),
        sa.Column("acked_by", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"], ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("incident_id", "cycle", "stage", "key", name="uq_task_stage_key")
    )
    op.create_index("ix_task_incident_id", "task", ["incident_id"], unique=False)
    op.create_index("ix_task_next_escalation", "task", ["status", "next_escalation_at"], unique=False)
    op.create_table("escalation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(), nullable=False),
        sa.Column("fired_at", sa.DateTime(), nullable=False),
        sa.Column("late_seconds", sa.Float(), nullable=False),
        sa.Column("acked_at", sa.DateTime(), nullable=True),
        sa.Column("acked_by", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"], ),
        sa.ForeignKeyConstraint(["task_id"], ["task.id"], ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("task_id", "level", name="uq_escalation_step")
    )
    op.create_index("ix_escalation_incident_id", "escalation", ["incident_id"], unique=False)
    op.create_index("ix_escalation_task_id", "escalation", ["task_id"], unique=False)
    _append_only_audit()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE IF EXISTS event CASCADE")
        op.execute("DROP FUNCTION IF EXISTS crisis_event_append_only()")
    op.drop_table("escalation")
    op.drop_table("task")
    op.drop_table("statement")
    op.execute("DROP TABLE IF EXISTS event")
    op.drop_table("outboxmessage")
    op.drop_table("loginthrottle")
    op.drop_table("loginsession")
    op.drop_table("incident")
    op.drop_table("idempotencykey")
    op.drop_table("apitoken")
    op.drop_table("account")
