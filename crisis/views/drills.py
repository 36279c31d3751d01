"""Drill runs as `crisis drill run` left them on disk (scorecards and report files), for the web's drills page."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crisis.errors import NotFound

DRILL_REPORT_FILE = re.compile(r"^(incident_report|after_action|scorecard)\.(zh-CN|en)\.(md|pdf)$")


@dataclass
class DrillRun:
    """One incident of a drill run as `crisis drill run` left it: its scorecard's figures and its report files.
    `folder` is relative to the drills folder (the run's folder, or run/incident when several were replayed)."""

    folder: str
    run: dict[str, Any]
    scenario: dict[str, Any]
    incident: dict[str, Any]
    metrics: dict[str, Any]
    expectations: list[dict[str, Any]]
    reports: dict[tuple[str, str], list[str]]  # (kind, lang) → formats written, md first
    at: datetime  # when the scorecard was written (UTC; the list is newest first)


def drill_runs(folder: Path, *, limit: int = 200) -> list[DrillRun]:
    """Drill runs under `folder` (`crisis drill run` writes reports/drills/RUN/scorecard.json, or
    RUN/INCIDENT/scorecard.json for several incidents), newest first, at most `limit`. Only reads files; a
    scorecard that is not readable JSON is left out rather than failing the list."""
    if not folder.is_dir():
        return []
    cards = sorted([*folder.glob("*/scorecard.json"), *folder.glob("*/*/scorecard.json")],
                   key=lambda p: p.stat().st_mtime, reverse=True)[:limit]
    runs = []
    for card in cards:
        try:
            doc = json.loads(card.read_text(encoding="utf-8"))
            scenario, run = doc["scenario"] or {}, doc["run"] or {}
        except (OSError, ValueError, KeyError, TypeError):
            continue
        reports: dict[tuple[str, str], list[str]] = {}
        for f in sorted(card.parent.iterdir(), key=lambda p: (p.suffix != ".md", p.name)):
            m = DRILL_REPORT_FILE.match(f.name)
            if m:
                reports.setdefault((m[1], m[2]), []).append(m[3])
        runs.append(DrillRun(card.parent.relative_to(folder).as_posix(), run, scenario, doc.get("incident") or {},
                             doc.get("metrics") or {}, doc.get("expectations") or [], reports,
                             datetime.fromtimestamp(card.stat().st_mtime, UTC)))
    return runs


def drill_file(folder: Path, relative: str) -> Path:
    """A drill report file by its path under `folder`, or NotFound: only report files and scorecard.json of
    a run's folder (one or two levels down), never anything else under or outside it."""
    parts = relative.split("/")
    name = parts[-1]
    if (not 2 <= len(parts) <= 3 or any(p in ("", ".", "..") or p.startswith(".") for p in parts)
            or not (DRILL_REPORT_FILE.match(name) or name == "scorecard.json")):
        raise NotFound(f"no drill report {relative!r}", what="drill_report", ref=relative)
    path = folder.joinpath(*parts)
    try:
        inside = path.resolve().is_relative_to(folder.resolve())
    except OSError:
        inside = False
    if not inside or not path.is_file():
        raise NotFound(f"no drill report {relative!r}", what="drill_report", ref=relative)
    return path
