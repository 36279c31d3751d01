"""crisis.yamlsrc's parse cache: a later process reads what a file parsed into instead of parsing it again, and
never serves anything but what parsing the file as it is now would give."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from helpers import PLAYBOOKS_DIR, ROSTER_PATH

from crisis import yamlsrc
from crisis.errors import InputError
from crisis.playbook import load_playbooks
from crisis.roster import load_roster
from crisis.yamlsrc import load_yaml

HOUR_AGO_NS = time.time_ns() - 3600 * 10**9


def settled(path: Path, text: str | None = None, ns: int = HOUR_AGO_NS) -> Path:
    """Write `text` (if given) and date the file back (an hour by default), as a deployed file is (a file changed
    within RACY_NS is parsed but not cached)."""
    if text is not None:
        path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(ns, ns))
    return path


@pytest.fixture
def no_parsing(monkeypatch: pytest.MonkeyPatch):
    """From here on, parsing a file fails the test: whatever loads must come from the cache."""
    def refuse(text: str, file: str) -> None:
        raise AssertionError(f"{file} was parsed")

    def apply() -> None:
        monkeypatch.setattr(yamlsrc, "parse_yaml", refuse)
    return apply


def test_second_load_comes_from_the_cache_with_the_same_data_and_lines(tmp_path, no_parsing):
    f = settled(tmp_path / "a.yaml", "name: x\nitems:\n  - 1\n  - two\nnested: {k: 1.5, b: true, n: null}\n")
    first = load_yaml(f, tmp_path / "cache")
    no_parsing()
    again = load_yaml(f, tmp_path / "cache")
    assert (again.data, again.lines, again.file) == (first.data, first.lines, first.file)
    assert again.lines[("items", 1)] == 4 and again.error(("items", 1), "bad").line == 4


def test_playbooks_and_roster_load_the_same_from_the_cache(tmp_path, no_parsing):
    folder = tmp_path / "playbooks"
    shutil.copytree(PLAYBOOKS_DIR, folder)
    roster = shutil.copy(ROSTER_PATH, tmp_path / "roster.yaml")
    for f in [*folder.glob("*.yaml"), Path(roster)]:
        settled(f)
    cache = tmp_path / "cache"
    parsed, people = load_playbooks(folder, cache), load_roster(roster, cache)
    no_parsing()
    cached = load_playbooks(folder, cache)
    assert [pb.model_dump() for pb in cached] == [pb.model_dump() for pb in parsed]
    assert cached.sources == parsed.sources
    assert load_roster(roster, cache) == people


def test_a_changed_file_is_parsed_again(tmp_path):
    f = settled(tmp_path / "a.yaml", "v: 1\n")
    assert load_yaml(f, tmp_path / "cache").data == {"v": 1}
    settled(f, "v: 2\n", HOUR_AGO_NS + 1000)  # same size, a microsecond later
    assert load_yaml(f, tmp_path / "cache").data == {"v": 2}
    settled(f, "v: 33\n")
    assert load_yaml(f, tmp_path / "cache").data == {"v": 33}


def test_a_file_changed_just_now_is_not_kept(tmp_path):
    """Within RACY_NS a second edit could keep the same size and mtime on a coarse clock: not cached yet."""
    f = tmp_path / "a.yaml"
    f.write_text("v: 1\n", encoding="utf-8")
    load_yaml(f, tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.json"))
    settled(f)
    load_yaml(f, tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1


@pytest.mark.parametrize("garbage", ["", "{", "[]", '{"key": 1}', '{"key": null, "data": 1, "lines": 2}', "\x00\xff"])
def test_a_corrupt_entry_is_a_miss_and_is_replaced(tmp_path, garbage):
    f = settled(tmp_path / "a.yaml", "v: [1, 2]\n")
    cache = tmp_path / "cache"
    load_yaml(f, cache)
    (entry,) = cache.glob("*.json")
    entry.write_bytes(garbage.encode("latin-1"))
    assert load_yaml(f, cache).data == {"v": [1, 2]}
    assert entry.read_text(encoding="utf-8").startswith('{"key"')  # rewritten


def test_an_entry_of_another_code_version_is_a_miss(tmp_path, monkeypatch):
    f = settled(tmp_path / "a.yaml", "v: 1\n")
    load_yaml(f, tmp_path / "cache")
    monkeypatch.setattr(yamlsrc, "CACHE_FORMAT", yamlsrc.CACHE_FORMAT + 1)
    monkeypatch.setattr(yamlsrc, "parse_yaml", lambda text, file: yamlsrc.YamlDoc({"parsed": True}, {}, file))
    assert load_yaml(f, tmp_path / "cache").data == {"parsed": True}


def test_what_json_would_change_is_never_cached(tmp_path):
    """Dates and non-string keys would come back as strings: such a file is parsed every time."""
    f = settled(tmp_path / "a.yaml", "start: 2026-01-05\n1: one\n")
    doc = load_yaml(f, tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.json"))
    assert load_yaml(f, tmp_path / "cache").data == doc.data


def test_errors_are_not_cached_and_stay_located(tmp_path):
    f = settled(tmp_path / "a.yaml", "a: 1\na: 2\n")
    for _ in range(2):
        with pytest.raises(InputError) as e:
            load_yaml(f, tmp_path / "cache")
        assert e.value.line == 2 and "duplicate key" in str(e.value)
    missing = tmp_path / "missing.yaml"
    with pytest.raises(InputError, match="file not found"):
        load_yaml(missing, tmp_path / "cache")


def test_an_unwritable_cache_folder_only_means_parsing(tmp_path):
    f = settled(tmp_path / "a.yaml", "v: 1\n")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x", encoding="utf-8")
    assert load_yaml(f, blocker / "cache").data == {"v": 1}
    assert load_yaml(f, blocker).data == {"v": 1}
