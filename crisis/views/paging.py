"""Paging and the one way the read models select records (crisis.views): a page of rows, and
`SELECT <a record's columns> FROM <its table> ...` on a snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from crisis.store.lite import ALL_ROWS, Snapshot
from crisis.store.records import TABLES, build, columns

R = TypeVar("R")
DEFAULT_PAGE = 50


@dataclass(frozen=True)
class Page(Generic[R]):
    """One page of a listing; the same reads (here and in crisis.service.queries) serve the CLI, the API and
    the web board."""

    items: list[R]
    total: int
    limit: int | None  # None: everything
    offset: int

    @property
    def next_offset(self) -> int | None:
        end = self.offset + len(self.items)
        return end if self.limit is not None and end < self.total else None


def select_records(snap: Snapshot, cls: type[R], rest: str, params: dict[str, Any] | None = None,
                   alias: str | None = None) -> list[R]:
    """Records of `cls` from `SELECT <its columns> FROM <its table> [alias] <rest>`."""
    sql = f"SELECT {columns(cls, alias)} FROM {TABLES[cls]}{' ' + alias if alias else ''} {rest}"
    return [build(cls, r) for r in snap.rows(sql, params)]


def page_bounds(limit: int | None, offset: int) -> dict[str, int]:
    """LIMIT/OFFSET parameters of one page (limit None: every row)."""
    return {"limit": ALL_ROWS if limit is None else limit, "offset": offset}
