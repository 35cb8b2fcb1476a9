"""A run as finance's run page shows it at any size: the whole run's summary (total, flags,
trail, reconciliation) with one page of its meter-tree nodes and one of its statements.

Nodes: the flagged ones first (those with a holding flag before the others), then the rest,
each part in tree order (depth-first); or the flagged ones only. They come from the balances
the run stored (one JSON text): only the nodes shown become :class:`NodeBalance` views.
Statements: by unit and party, optionally only those a search text finds, read a page at a
time with SQL (:mod:`cloud.apportion.run_statements`). A page is at most :data:`PAGE_ROWS`
rows; a ``start`` past the end shows the last page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from cloud.apportion.balances import NodeBalance
from cloud.apportion.exports import StatementTotal
from cloud.apportion.models import ApportionRun
from cloud.apportion.review import RunDetail, RunReviewService
from cloud.apportion.run_statements import (
    TenantSearch,
    page_start,
    statement_page,
    unit_names,
)
from cloud.staff.accounts import Principal

#: Most rows one table of a run's page shows at once [rows].
PAGE_ROWS = 100
#: Longest statement search text [characters].
SEARCH_MAX = 64


@dataclass(frozen=True)
class PageView:
    """What a run's page asks for: where each table starts (from 0), rows a page, flagged
    nodes only, the statement search text."""

    nodes_start: int = 0
    statements_start: int = 0
    count: int = PAGE_ROWS
    flagged_only: bool = False
    search: str = ""


@dataclass(frozen=True)
class Window:
    """One page of a table: the first row shown (from 0), rows shown, rows in all (that the
    filter or search keeps), rows a page."""

    start: int
    shown: int
    total: int
    count: int

    @property
    def first(self) -> int:
        """The first row shown, from 1 (0 when none is)."""
        return self.start + 1 if self.shown else 0

    @property
    def last(self) -> int:
        return self.start + self.shown

    @property
    def previous(self) -> int | None:
        """Where the page before starts (None on the first page)."""
        return max(self.start - self.count, 0) if self.start > 0 else None

    @property
    def next(self) -> int | None:
        """Where the page after starts (None on the last page)."""
        return self.start + self.count if self.start + self.count < self.total else None


@dataclass(frozen=True)
class RunPage:
    """The run's detail with the shown nodes and statements, and where they are."""

    detail: RunDetail
    nodes: Window
    #: nodes of the run in all, and those with a flag
    all_nodes: int
    flagged_nodes: int
    statements: Window
    #: unit node → display name, for the statements shown
    unit_names: dict[str, str] = field(default_factory=dict)


def flagged_first(stored: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Nodes with a holding flag, then those with other flags, then the rest (a stable sort:
    tree order within each)."""

    def rank(node: dict[str, Any]) -> int:
        flags = node.get("flags") or []
        return 0 if any(f.get("holds") for f in flags) else 1 if flags else 2

    return sorted(stored, key=rank)


class RunPageService:
    """The run page's view of a run (scope and checks are the run service's)."""

    def __init__(self, runs: RunReviewService, tenants_named: TenantSearch | None = None) -> None:
        self.runs = runs
        self.tenants_named = tenants_named

    def page(self, who: Principal, run_id: str, view: PageView) -> RunPage:
        """The run with the page of nodes and of statements ``view`` asks for (NotFound
        outside the principal's sites)."""
        count = min(max(view.count, 1), PAGE_ROWS)
        search = view.search.strip()[:SEARCH_MAX]
        found: dict[str, Any] = {}

        def pick(
            session: Session, run: ApportionRun, stored: list[dict[str, Any]]
        ) -> tuple[list[NodeBalance], list[StatementTotal]]:
            ordered = flagged_first(stored)
            flagged = sum(1 for n in ordered if n.get("flags"))
            if view.flagged_only:
                ordered = ordered[:flagged]
            start = page_start(view.nodes_start, len(ordered), count)
            nodes = [NodeBalance(**n) for n in ordered[start : start + count]]
            found["nodes"] = Window(start, len(nodes), len(ordered), count)
            found["all_nodes"], found["flagged_nodes"] = len(stored), flagged
            statements, total, at = statement_page(
                session, run, view.statements_start, count, search, self.tenants_named
            )
            found["statements"] = Window(at, len(statements), total, count)
            found["unit_names"] = unit_names(session, run.site_id, [s.unit for s in statements])
            return nodes, statements

        detail = self.runs.detail_with(who, run_id, pick)
        return RunPage(detail, **found)
