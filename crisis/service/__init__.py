"""Application service: each command is one database transaction around the pure engine.

Every command takes `now` from the injected clock (or an explicit `now`), validates all of
its input before writing, and either commits everything (state, audit events, outbox
messages) or nothing. Audit events are logged as structlog JSON only after the commit.
The commands live in one module per concern; `CrisisService` is their union.
"""

from crisis.service.base import SYSTEM
from crisis.service.duties import DutyCommands
from crisis.service.escalation import EscalationCommands
from crisis.service.incidents import IncidentCommands
from crisis.service.oncall import OnCallCommands
from crisis.service.queries import Queries
from crisis.service.statements import StatementCommands
from crisis.service.tasks import TaskCommands


class CrisisService(IncidentCommands, TaskCommands, DutyCommands, EscalationCommands, StatementCommands,
                    OnCallCommands, Queries):
    """The one door: every adapter calls these commands and reads."""


__all__ = ["SYSTEM", "CrisisService"]
