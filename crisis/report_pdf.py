"""Reports as PDF: the same Markdown the templates render, laid out for print with WeasyPrint.

Why these libraries: markdown-it-py (already installed with Rich) turns the Markdown into HTML with
raw HTML switched off, so user text stays text; WeasyPrint lays out HTML/CSS for paged media (page
breaks, running headers, page counters) with Pango, which shapes Chinese with the system's CJK font
(Debian: fonts-noto-cjk). Sections flow one after another (a young incident's report is a page or two,
not a mostly empty page per section); a heading or a table's caption line never ends a page alone, a short
table is never split, a long one breaks between rows with its header repeated. Every page carries the
hospital's name (the roster's `organisation`) and the report's title in its header, "page n / N" in its footer.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

from crisis import labels
from crisis.errors import Unavailable

TITLES = {
    "incident_report": ("舆情专报", "Incident report"),
    "after_action": ("复盘报告", "After-action review"),
    "scorecard": ("演练评分卡", "Drill scorecard"),
}
SHORT = 12  # a cell this short (a time, a date, a name, a group) is never broken over lines
_SHORT_CELL = re.compile(r"<td( [^>]*)?>([^<]*)</td>")
# a table this small (rows with its header, characters of text) moves to the next page whole rather than
# split; a bigger one breaks between rows (a half-empty page costs more than a split with its header repeated)
KEEP_WHOLE = (6, 400)
_TABLE = re.compile(r"<table>(.*?)</table>", re.S)
_TAG = re.compile(r"<[^>]+>")
FONTS = '"Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Micro Hei", sans-serif'

_CSS = """
@page {
  size: A4;
  margin: 20mm 16mm 16mm 16mm;
  @top-left { content: %(org)s; font-size: 9pt; color: #555; }
  @top-right { content: %(title)s; font-size: 9pt; color: #555; }
  @bottom-center { content: counter(page) " / " counter(pages); font-size: 8pt; color: #777; }
}
html { font-family: %(fonts)s; font-size: 10pt; line-height: 1.45; color: #111; }
h1 { font-size: 18pt; margin: 0 0 4mm 0; }
h2 { font-size: 13pt; margin: 4.5mm 0 1.5mm 0; border-bottom: 1px solid #999; padding-bottom: 1mm; }
h1, h2, h3, h4 { break-after: avoid; }
p:has(> strong:only-child) { break-after: avoid; }  /* a group's name above its table */
p, li { orphans: 2; widows: 2; }
p { margin: 0.6em 0; }
table.whole { break-inside: avoid; }
thead { display: table-header-group; }  /* repeated on every page a long table spans */
table { width: 100%%; border-collapse: collapse; margin: 1.5mm 0 3mm 0; font-size: 8.5pt; }
th, td { border: 0.5pt solid #888; padding: 1mm 1.5mm; vertical-align: top; text-align: left;
         overflow-wrap: break-word; }
th, td.short { white-space: nowrap; }
th { background: #eee; }
td[style*="right"] { text-align: right; }
tr { break-inside: avoid; }
p, li { overflow-wrap: break-word; }
code { font-family: %(fonts)s; }
"""


def css_string(text: str) -> str:
    """A CSS string literal holding `text` as it is: quotes, backslashes and line breaks escaped, and `<`
    as a CSS escape so a `</style>` in the text cannot end the style element around it."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ").replace("\r", " ")
    escaped = escaped.replace("<", "\\3c ")
    return f'"{escaped}"'


def _small(table: str) -> bool:
    rows, chars = KEEP_WHOLE
    return table.count("<tr") <= rows and len(html.unescape(_TAG.sub("", table))) <= chars


def to_html(markdown: str, *, organisation: str, title: str, lang: str) -> str:
    """A whole HTML document: the rendered Markdown (no raw HTML passes through) and the print CSS."""
    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    body = _SHORT_CELL.sub(lambda m: m.group(0).replace("<td", '<td class="short"', 1)
                           if len(html.unescape(m.group(2))) <= SHORT else m.group(0), md.render(markdown))
    body = _TABLE.sub(lambda m: f'<table class="whole">{m.group(1)}</table>' if _small(m.group(1)) else m.group(0),
                      body)
    css = _CSS % {"org": css_string(organisation), "title": css_string(title), "fonts": FONTS}
    html_lang = "zh-CN" if lang == "zh-CN" else "en"
    return (f'<!DOCTYPE html><html lang="{html_lang}"><head><meta charset="utf-8"><style>{css}</style></head>'
            f"<body>{body}</body></html>")


def render_pdf(markdown: str, *, kind: str, ctx: dict[str, Any], lang: str) -> bytes:
    """The PDF of one rendered report."""
    try:
        from weasyprint import HTML
    except OSError as exc:  # WeasyPrint loads Pango with ctypes when imported
        raise Unavailable("PDF output needs Pango (Debian: apt-get install libpango-1.0-0 libpangoft2-1.0-0 "
                          f"fonts-noto-cjk): {exc}") from None
    zh = lang == "zh-CN"
    organisation = labels.pick(ctx.get("organisation") or "", lang) or ("（单位）" if zh else "(organisation)")
    name = TITLES[kind][0 if zh else 1]
    inc = ctx["incident"]
    title = f"{name} · 第 {inc['id']} 号事件" if zh else f"{name} · incident #{inc['id']}"
    if ctx.get("scenario"):
        title += " · 演练" if zh else " · drill"
    page = to_html(markdown, organisation=organisation, title=title, lang=lang)
    pdf = HTML(string=page, base_url=str(Path.cwd())).write_pdf()
    assert pdf is not None
    return pdf
