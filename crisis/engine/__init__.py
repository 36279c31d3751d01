"""Functional core: the stage machine, task planning and escalation arithmetic. No I/O here."""
