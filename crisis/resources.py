"""The data files that ship inside the package: playbooks, report templates, the example roster, drills.

The repository keeps them in top-level folders (playbooks/, templates/, examples/); a wheel carries copies
under crisis/data/ (setup.py's build step). `data_path` finds them through importlib.resources in an
installed package and falls back to the source checkout (an editable install). Settings may point anywhere
else (CRISIS_PLAYBOOKS, CRISIS_ROSTER; reports.render takes a templates folder).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("playbooks", "templates", "examples")  # what setup.py copies into crisis/data/


def data_path(*parts: str) -> Path:
    """Path of a shipped data file or folder, e.g. data_path("examples", "roster.yaml").

    Installed wheels are unpacked on disk, so the importlib.resources traversable is a real path."""
    shipped = files("crisis").joinpath("data", *parts)
    if shipped.is_file() or shipped.is_dir():
        return Path(str(shipped))
    return SOURCE_ROOT.joinpath(*parts)
