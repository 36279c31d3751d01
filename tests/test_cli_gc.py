"""The `crisis` process tunes Python's cyclic garbage collector for its start-up only (crisis.cli.common.startup_gc):
timings are in benchmarks/; this checks that the tuning ends once the service is built."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers import CATEGORY, ROOT, crisis_env

GC_PROBE = """
import gc, json, sys
sys.argv = ["crisis", *json.loads(sys.argv[1])]
default = gc.get_threshold()
from crisis.cli import common, main
seen = {}
real = common.loaded
def watch():
    seen["before"] = gc.get_threshold()
    real()
    seen["after"], seen["frozen"] = gc.get_threshold(), gc.get_freeze_count()
common.loaded = watch
try:
    main()
except SystemExit as exc:
    seen["code"] = exc.code
print(json.dumps({"default": default, **seen}))
"""


def test_the_collector_is_tuned_for_start_up_only(tmp_path):
    """The `crisis` process collects rarely while it loads, then freezes what it loaded and returns to the usual
    thresholds once the service is built (a long-running command, `serve` or the scheduler, collects as usual)."""
    env = {**os.environ, **crisis_env(tmp_path)}
    args = ["open", "--title", "t", "--category", CATEGORY, "--by", "duty_officer"]
    res = subprocess.run([sys.executable, "-c", GC_PROBE, json.dumps(args)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["code"] in (0, None)
    assert got["before"][0] > got["default"][0] and got["after"] == got["default"]
    assert got["frozen"] > 10_000  # the modules, classes and mappers loaded so far
