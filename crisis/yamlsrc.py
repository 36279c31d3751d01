"""Load YAML while remembering the line of every field, so validation errors can name it.

PyYAML silently keeps the last of duplicate keys; here a duplicate is an error. Input files are
hand-written configuration, so anything a hostile or broken file could use to hang or crash the loader
is refused with a located error before PyYAML builds objects: files over MAX_BYTES, anchors and
aliases (a few hundred bytes of nested aliases expand to billions of nodes, and a recursive alias never
ends), nesting deeper than MAX_DEPTH (PyYAML's composer recurses), and invalid dates.

Parsing the playbooks and the roster was a tenth of a write command's start-up (each file is parsed twice:
the event scan, then the composer). `load_yaml(path, cache=folder)` keeps what a file parsed into (its data
and line map, as JSON) in `folder`, keyed by the file's resolved path, size and mtime_ns and this module's
own size and mtime_ns; a later process with the same key reads that instead of parsing. Only files that parsed
cleanly, into plain JSON types, are kept; a missing, unreadable, corrupt or stale entry is just a miss, and a
file changed less than RACY_NS ago is not kept (a second change within the clock's granularity could keep its
size and mtime). PyYAML itself loads only when a file is parsed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from contextlib import suppress
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from crisis.errors import InputError

if TYPE_CHECKING:
    import yaml

Loc = tuple[str | int, ...]
MAX_BYTES = 1024 * 1024  # playbooks, rosters and scenarios are a few KiB; 1 MiB is generous
MAX_DEPTH = 32  # the deepest shipped file nests 7 levels
CACHE_FORMAT = 1  # bump when what an entry holds changes
RACY_NS = 3_000_000_000  # a file changed this recently is parsed but not kept (coarse mtime clocks)
M = TypeVar("M", bound=BaseModel)


@cache
def _loader() -> type[yaml.SafeLoader]:
    """libyaml's parser when PyYAML was built with it (the wheels are): ~10x faster than the pure-Python one,
    which was most of every command's start-up. Same safe constructor, same nodes and marks."""
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class LocatedValueError(ValueError):
    """Raised by a model validator to point below the field it validates (e.g. at one key of a mapping)."""

    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(message)
        self.loc = tuple(loc)


class YamlDoc:
    """Parsed YAML data plus a map from field path to 1-based line number."""

    def __init__(self, data: Any, lines: dict[Loc, int], file: str) -> None:
        self.data, self.lines, self.file = data, lines, file

    def line_of(self, loc: Loc) -> int | None:
        """Line of the deepest known prefix of `loc`."""
        for n in range(len(loc), -1, -1):
            if tuple(loc[:n]) in self.lines:
                return self.lines[tuple(loc[:n])]
        return None

    def error(self, loc: Loc, message: str) -> InputError:
        return InputError(message, file=self.file, field=format_loc(loc) or None, line=self.line_of(loc))

    def validate(self, model: type[M], loc: Loc = (), data: Any = None) -> M:
        """Validate (a part of) the document with pydantic, reporting the first error located."""
        try:
            return model.model_validate(self.data if data is None else data)
        except ValidationError as exc:
            first = exc.errors()[0]
            full = tuple(loc) + tuple(p for p in first["loc"] if isinstance(p, str | int))
            cause = (first.get("ctx") or {}).get("error")
            if isinstance(cause, LocatedValueError):
                full += cause.loc
            msg = first["msg"]
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, "):]
            extra = len(exc.errors()) - 1
            if extra:
                msg += f" (and {extra} more error{'s' if extra > 1 else ''})"
            raise self.error(full, msg) from None


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_yaml(path: str | Path, cache: Path | None = None) -> YamlDoc:
    """The file parsed (with `cache`, a folder: what an earlier process parsed it into, when still current)."""
    path = Path(path)
    key = _cache_key(path) if cache is not None else None
    if key is not None and cache is not None:
        doc = _from_cache(cache, key, str(path))
        if doc is not None:
            return doc
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise InputError("file not found", file=str(path)) from None
    except IsADirectoryError:
        raise InputError("is a folder, expected a YAML file", file=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror or exc})", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason})", file=str(path)) from None
    doc = parse_yaml(text, str(path))
    if key is not None and cache is not None:
        _to_cache(cache, key, doc)
    return doc


def _cache_key(path: Path) -> list[Any] | None:
    try:
        st, own = path.stat(), Path(__file__).stat()
        return [CACHE_FORMAT, str(path.resolve()), st.st_size, st.st_mtime_ns, own.st_size, own.st_mtime_ns]
    except OSError:  # reading it fails too, with the usual error
        return None


def _cache_file(folder: Path, key: list[Any]) -> Path:
    return folder / f"yaml-{hashlib.sha256(key[1].encode()).hexdigest()[:32]}.json"


def _from_cache(folder: Path, key: list[Any], file: str) -> YamlDoc | None:
    try:
        with _cache_file(folder, key).open(encoding="utf-8") as fh:
            entry = json.load(fh)
        if entry["key"] != key:
            return None
        return YamlDoc(entry["data"], {tuple(loc): int(line) for loc, line in entry["lines"]}, file)
    except (OSError, ValueError, KeyError, TypeError):  # none yet, unreadable, truncated or not ours: parse
        return None


def _to_cache(folder: Path, key: list[Any], doc: YamlDoc) -> None:
    """Keep the parse for the next process, written whole or not at all (another may be writing it too)."""
    if time.time_ns() - key[3] < RACY_NS or not _plain(doc.data):
        return
    body = json.dumps({"key": key, "data": doc.data, "lines": [[list(k), v] for k, v in doc.lines.items()]},
                      ensure_ascii=False)
    tmp = None
    with suppress(OSError):  # a read-only or full store: every command parses, as without a cache
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".yaml-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(body)
        os.replace(tmp, _cache_file(folder, key))
        tmp = None
    if tmp is not None:
        with suppress(OSError):
            os.unlink(tmp)


def _plain(value: Any) -> bool:
    """Whether JSON gives `value` back as it is (no dates, no non-string keys, no sets or bytes)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or type(value) in (str, int, float, bool)


def parse_yaml(text: str, file: str) -> YamlDoc:
    import yaml

    if len(text) > MAX_BYTES or len(text.encode("utf-8")) > MAX_BYTES:
        raise InputError(f"file is larger than {MAX_BYTES // 1024} KiB", file=file)
    try:
        _check_events(text, file)
        node = yaml.compose(text, Loader=_loader())
    except yaml.reader.ReaderError as exc:  # a control character: PyYAML's message spans two lines
        raise InputError(f"character {exc.character!r} is not allowed in YAML", file=file,
                         line=text.count("\n", 0, exc.position) + 1) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        opened = getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        if opened is not None and mark is not None and mark.index >= len(text.rstrip()):
            # e.g. an unclosed quote or bracket: the problem shows at the end of the file, the cause where it opened
            problem = f"{problem} at line {mark.line + 1}" + (f" ({context})" if context else "")
            mark = opened
        raise InputError(f"YAML syntax error: {' '.join(str(problem).split())}", file=file,
                         line=mark.line + 1 if mark else None) from None
    if node is None:
        raise InputError("file is empty", file=file)
    lines: dict[Loc, int] = {(): node.start_mark.line + 1}
    _walk(node, (), lines, file)
    try:
        data = _loader()("").construct_document(node)  # from the node already composed
    except (yaml.YAMLError, ValueError, TypeError) as exc:  # an unhashable key, an unknown !!tag, !!float x
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(f"YAML value error: {problem}", file=file, line=mark.line + 1 if mark else None) from None
    return YamlDoc(data, lines, file)


def _check_events(text: str, file: str) -> None:
    """Refuse anchors, aliases and deep nesting from the event stream, before anything is composed."""
    import yaml

    depth = 0
    try:
        for ev in yaml.parse(text, Loader=_loader()):
            line = ev.start_mark.line + 1
            if isinstance(ev, yaml.AliasEvent) or getattr(ev, "anchor", None) is not None:
                raise InputError("YAML anchors and aliases (&name, *name) are not allowed here; write the value out",
                                 file=file, line=line)
            if isinstance(ev, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise InputError(f"nested deeper than {MAX_DEPTH} levels", file=file, line=line)
            elif isinstance(ev, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError as exc:
        # libyaml scans a flow collection ahead and stops at its own limit (1000) before we see the events
        if "nesting depth" not in str(getattr(exc, "problem", "")):
            raise
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"nested deeper than {MAX_DEPTH} levels", file=file,
                         line=mark.line + 1 if mark else None) from None


_TIMESTAMP = "tag:yaml.org,2002:timestamp"


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int], file: str) -> None:
    import yaml

    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                raise InputError(f"duplicate key '{key}'", file=file, field=format_loc((*loc, key)),
                                 line=key_node.start_mark.line + 1)
            seen.add(key)
            lines[(*loc, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*loc, key), lines, file)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*loc, i)] = item.start_mark.line + 1
            _walk(item, (*loc, i), lines, file)
    elif node.tag == _TIMESTAMP:
        try:
            yaml.SafeLoader("").construct_yaml_timestamp(node)
        except ValueError as exc:  # e.g. 2026-02-30: PyYAML raises a bare ValueError while constructing
            raise InputError(f"invalid date {node.value!r} ({exc})", file=file, field=format_loc(loc) or None,
                             line=node.start_mark.line + 1) from None
