"""Load YAML while remembering the line of every field, so validation errors can name it.

PyYAML silently keeps the last of duplicate keys; here a duplicate is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from crisis.errors import InputError

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


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


def load_yaml(path: str | Path) -> YamlDoc:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("file not found", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason})", file=str(path)) from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, file: str) -> YamlDoc:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        opened = getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        if opened is not None and mark is not None and mark.index >= len(text.rstrip()):
            # e.g. an unclosed quote or bracket: the problem shows at the end of the file, the cause where it opened
            problem = f"{problem} at line {mark.line + 1}" + (f" ({context})" if context else "")
            mark = opened
        raise InputError(f"YAML syntax error: {problem}", file=file,
                         line=mark.line + 1 if mark else None) from None
    if node is None:
        raise InputError("file is empty", file=file)
    lines: dict[Loc, int] = {(): node.start_mark.line + 1}
    _walk(node, (), lines, file)
    data = yaml.safe_load(text)
    return YamlDoc(data, lines, file)


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int], file: str) -> None:
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
