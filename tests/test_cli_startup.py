"""`crisis --help` stays light: the engine, the database layer and the models load when a command runs.

A guard against a top-level import in a CLI module undoing the start-up work (timings are in benchmarks/)."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import ROOT

PROBE = """
import json, sys
sys.argv = ["crisis", "--help"]
from crisis.cli import app
try:
    app()
except SystemExit:
    pass
heavy = ["sqlalchemy", "sqlmodel", "crisis.service", "crisis.store.models", "crisis.config", "structlog"]
print(json.dumps([m for m in heavy if m in sys.modules]))
"""


def test_help_loads_no_engine_database_or_models():
    res = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1]) == []
