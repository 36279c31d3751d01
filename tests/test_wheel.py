"""A built wheel carries the playbooks, report templates and example roster: installed outside the
repository (cwd elsewhere, no CRISIS_* variables), it loads them and renders a report, keeping its database,
log and notification file in the current directory's store/ (never in site-packages).

Builds the wheel with pip (build isolation fetches setuptools from the configured index, as `dev.py` does
when installing), installs it with --no-deps into a folder, and runs `python -m crisis` from there with this
venv's dependencies. About 10 s."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from helpers import ROOT


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "-q", "--disable-pip-version-check", *args], check=True,
                   cwd=ROOT, timeout=180)


def test_wheel_ships_its_data_and_renders_a_report(tmp_path: Path) -> None:
    wheels, site, work = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    work.mkdir()
    pip("wheel", "--no-deps", "-w", str(wheels), str(ROOT))
    (wheel,) = wheels.glob("crisis-*.whl")
    pip("install", "--no-deps", "--no-index", "--target", str(site), str(wheel))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRISIS_")}
    env |= {"PYTHONPATH": str(site)}

    def crisis(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "crisis", *args], cwd=work, env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    where = subprocess.run([sys.executable, "-c", "import crisis.resources as r; print(r.data_path('playbooks'))"],
                           cwd=work, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(site) and (Path(where) / "medical_dispute.yaml").is_file()
    crisis("db", "init")
    outline = json.loads(crisis("playbook", "show", "medical_dispute", "--json"))
    assert outline
    opened = json.loads(crisis("open", "--title", "挂号纠纷", "--category", "medical_dispute", "--json"))
    incident = opened.get("incident", opened)
    report = crisis("report", str(incident["id"]), "--lang", "en")
    assert "挂号纠纷" in report and len(report.splitlines()) > 10
    store = work / "store"
    assert (store / "crisis.db").is_file() and (store / "crisis.log").is_file()
    assert "挂号纠纷" in (store / "notifications.jsonl").read_text("utf-8")
    assert not list(site.glob("store")) and not list(site.glob("reports"))
