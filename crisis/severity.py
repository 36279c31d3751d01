"""The four grades used everywhere (特别重大/重大/较大/一般, I highest) and their warning colours."""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    I = "I"  # noqa: E741 - the official grade name
    II = "II"
    III = "III"
    IV = "IV"

    @property
    def rank(self) -> int:
        """1 for the gravest grade, 4 for the mildest."""
        return _ORDER.index(self) + 1

    @property
    def label_zh(self) -> str:
        return {"I": "特别重大", "II": "重大", "III": "较大", "IV": "一般"}[self.value]

    @property
    def label_en(self) -> str:
        return {"I": "extremely serious", "II": "serious", "III": "relatively serious", "IV": "general"}[
            self.value]

    @property
    def colour(self) -> str:
        return {"I": "red", "II": "orange", "III": "yellow", "IV": "blue"}[self.value]

    @classmethod
    def parse(cls, value: object) -> Severity:
        """Accept I..IV, 1..4, and the Chinese warning words (一级 …)."""
        text = str(value).strip().upper()
        aliases = {"1": "I", "2": "II", "3": "III", "4": "IV", "一级": "I", "二级": "II", "三级": "III",
                   "四级": "IV", "特别重大": "I", "重大": "II", "较大": "III", "一般": "IV"}
        text = aliases.get(text, text)
        try:
            return cls(text)
        except ValueError:
            raise ValueError(f"invalid severity {value!r} (use I, II, III or IV)") from None


_ORDER = [Severity.I, Severity.II, Severity.III, Severity.IV]
