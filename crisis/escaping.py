"""Escaping user text for Markdown, the one place it is done: reports (Jinja `finalize`) and chat messages.

A value printed into Markdown must read as the same text, never as markup: a title `# 标题` must not become
a heading, `[点此](http://…)` a link, `<img …>` HTML, `a | b` a new table column, a line break a new
paragraph. `md_inline` turns any value into one line of inert Markdown (CommonMark backslash escapes, which
every renderer we target, DingTalk/WeCom/Feishu chat Markdown included, reads as the plain character).
Ordinary text stays readable: dates, `snake_case` keys and `舆情#3` are left alone.
"""

from __future__ import annotations

import functools
import re

# Escaped wherever they appear: emphasis, code, links and images, HTML, table cells, strike-through.
_ANYWHERE = re.compile(r"([\\`*\[\]<|~])")
# `_` opens emphasis only next to a non-word character (`snake_case` is safe in CommonMark).
_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")
# Entities: `&lt;` would render as `<`; a lone `&` is fine.
_ENTITY = re.compile(r"&(?=#?\w+;)")
# Block syntax only counts at the start of a line, and a value is always one line: headings, block quotes,
# list items (`- `, `+ `, `1. `, `1) `), setext underlines and thematic breaks.
_LEADING = re.compile(r"^(#|>|[-+](?=\s)|-{2,}$|=+$|\d+(?=[.)](?:\s|$)))")


class Md(str):
    """Text that is already Markdown (escaped, or written by our own code): printed as is."""

    __slots__ = ()


def md_inline(value: object) -> Md:
    """Any value as one line of inert Markdown: whitespace (line breaks included) collapses to single
    spaces, Markdown punctuation is backslash-escaped. Already-escaped `Md` passes through unchanged."""
    if isinstance(value, Md):
        return value
    return escape_text(str(value))


@functools.lru_cache(maxsize=8192)
def escape_text(text: str) -> Md:
    """Kept per text: a report repeats the same names, labels and times hundreds of times (a 100-incident drill
    printed 157,000 values, 3,700 distinct), and five regular expressions per value were most of rendering."""
    text = " ".join(text.split())
    text = _ANYWHERE.sub(r"\\\1", text)
    text = _UNDERSCORE.sub(r"\\_", text)
    text = _ENTITY.sub(r"\\&", text)
    m = _LEADING.match(text)
    if m:
        lead = m.group(1)
        text = (lead + "\\" + text[len(lead):]) if lead[0].isdigit() else "\\" + text
    return Md(text)
