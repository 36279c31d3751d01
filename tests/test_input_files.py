"""Playbook, roster and scenario files that would hang or crash the loader get a located one-line error."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import DRILLS_DIR, PLAYBOOKS_DIR, ROSTER_PATH, Cli, crisis_env, time_limit

from crisis import reports
from crisis.drill.scenario import load_scenario
from crisis.errors import InputError
from crisis.playbook import load_playbooks
from crisis.roster import load_roster
from crisis.yamlsrc import MAX_BYTES, MAX_DEPTH

SCENARIO = DRILLS_DIR / "medical-dispute-viral.yaml"


def alias_bomb() -> str:
    """342 bytes that expand to 9^9 strings: PyYAML alone takes minutes (and gigabytes) to build it."""
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        text += f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]\n"
    return text


def loaders(tmp_path: Path):
    """Each loader with the folder or file it reads: a playbook folder, a roster file, a scenario file."""
    pb = tmp_path / "playbooks"
    pb.mkdir(exist_ok=True)
    return [(lambda p: load_playbooks(p.parent), pb / "x.yaml"), (load_roster, tmp_path / "roster.yaml"),
            (load_scenario, tmp_path / "scenario.yaml")]


def refused(tmp_path: Path, text: str, *needles: str) -> InputError:
    errors = []
    for load, path in loaders(tmp_path):
        path.write_text(text, encoding="utf-8")
        with time_limit(5, f"loading {path.name}"), pytest.raises(InputError) as e:
            load(path)
        assert str(path) in str(e.value)
        for n in needles:
            assert n in str(e.value)
        errors.append(e.value)
        path.unlink()
    return errors[0]


def test_alias_bomb_is_refused_at_once(tmp_path):
    err = refused(tmp_path, alias_bomb(), "anchors and aliases")
    assert err.line == 1


def test_recursive_alias_is_refused(tmp_path):
    refused(tmp_path, "category: x\na: &a [*a]\n", "anchors and aliases")


def test_any_alias_is_refused_even_a_harmless_one(tmp_path):
    err = refused(tmp_path, "category: x\nname: &n {zh: 甲, en: A}\nother: *n\n", "anchors and aliases")
    assert err.line == 2


def test_deep_nesting_is_refused(tmp_path):
    refused(tmp_path, "a: " + "[" * 100_000 + "]" * 100_000 + "\n", f"deeper than {MAX_DEPTH}")
    refused(tmp_path, "".join("  " * i + f"k{i}:\n" for i in range(MAX_DEPTH + 5)) + "  " * 40 + "v\n",
            f"deeper than {MAX_DEPTH}")


def test_files_over_the_size_limit_are_refused(tmp_path):
    refused(tmp_path, "# padding\n" * (MAX_BYTES // 10 + 1), "larger than 1024 KiB")


@pytest.mark.parametrize(("text", "needle", "line"), [
    ("start: 2026-02-30T21:00:00+08:00\n", "invalid date '2026-02-30T21:00:00+08:00'", 1),
    ("a: 1\nb:\n  - 2026-13-01\n", "invalid date '2026-13-01'", 3),
    ("a:\n  ? [x]\n  : 1\n", "unhashable key", 2),
    ("a: !!python/object/apply:os.system [echo hi]\n", "could not determine a constructor", 1),
    ("a: !!float abc\n", "YAML value error", None),
])
def test_values_pyyaml_cannot_build(tmp_path, text, needle, line):
    err = refused(tmp_path, text, needle)
    assert err.line == line


@pytest.mark.parametrize(("find", "replace", "needle"), [
    ("start: 2026-03-14T21:30:00+08:00", "start: 9999-12-31T23:00:00+00:00", "start must lie between"),
    ("start: 2026-03-14T21:30:00+08:00", "start: 0001-01-01T00:30:00+08:00", "start must lie between"),
    ("duration: 72h", "duration: 99999999d", "longer than a drill may last"),
    ("duration: 72h", "duration: 999999999999999d", "is too long"),
])
def test_huge_scenario_start_or_duration(tmp_path, find, replace, needle):
    text = SCENARIO.read_text(encoding="utf-8").replace("roster: ../roster.yaml", f"roster: {ROSTER_PATH}")
    assert find in text
    path = tmp_path / "s.yaml"
    path.write_text(text.replace(find, replace), encoding="utf-8")
    with pytest.raises(InputError, match=needle):
        load_scenario(path)


def test_a_failed_drill_leaves_no_report_folder_or_database(tmp_path, monkeypatch):
    for name, value in crisis_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CRISIS_HOME", str(tmp_path))  # where the default drill database goes

    def disk_full(*_a, **_k):
        raise OSError(28, "No space left on device", str(tmp_path / "reports" / "report.md"))

    monkeypatch.setattr(reports, "write_context", disk_full)  # the disk fills while reports are written
    out = tmp_path / "out"
    result = Cli(tmp_path)("drill", "run", str(SCENARIO), "--out", str(out), code=2)
    assert "No space left on device" in result.output and "Traceback" not in result.output
    assert not out.exists()
    assert list((tmp_path / "store" / "drills").iterdir()) == []


def test_shipped_files_still_load():
    load_playbooks(PLAYBOOKS_DIR)
    load_roster(ROSTER_PATH)
    for path in DRILLS_DIR.glob("*.yaml"):
        load_scenario(path)
