"""The web pages' words: one gettext catalogue per language (msgids are the English text).

zh-CN is the default; English is the msgid itself. The .po file is read with Babel when the app starts, so
a fresh clone needs no compile step and a missing translation shows the English text rather than failing.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from babel.messages.pofile import read_po

LANGS = ("zh-CN", "en")
DEFAULT = "zh-CN"
LANG_COOKIE = "crisis_lang"


@cache
def catalogue(lang: str) -> dict[str, str]:
    """msgid → text for `lang` (empty for English)."""
    if lang == "en":
        return {}
    folder = lang.replace("-", "_")
    src = resources.files("crisis.web") / "locale" / folder / "LC_MESSAGES" / "web.po"
    with src.open("rb") as fh:
        cat = read_po(fh, locale=folder)
    return {str(m.id): str(m.string) for m in cat if m.id and m.string and not m.fuzzy}


def gettext_for(lang: str):  # noqa: ANN201 - a plain callable for Jinja's `_`
    words = catalogue(lang)

    sep = ", " if lang == "en" else "、"

    def _(msgid: str, **kw: object) -> str:
        """The text of `msgid` with its values; a list value is a list of msgids, translated and joined."""
        text = words.get(msgid, msgid)
        kw = {k: sep.join(words.get(str(x), str(x)) for x in v) if isinstance(v, list | tuple) else v
              for k, v in kw.items()}
        return text.format(**kw) if kw else text

    return _


def pick_lang(query: str | None, cookie: str | None) -> str:
    for cand in (query, cookie):
        if cand in LANGS:
            return cand  # type: ignore[return-value]
    return DEFAULT
