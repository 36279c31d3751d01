"""Persistence adapter: SQLModel tables, the UTC column type, engine set-up and migrations."""
