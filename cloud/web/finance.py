"""Finance's pages and JSON API: runs by period and site, a run's tree with balances and flags,
review → approve → post (and void) with the audit trail, the disputes queue and exports (CSV,
Excel). The printable statements are :mod:`cloud.web.printing`."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from cloud.apportion.reconcile import total
from cloud.apportion.review import (
    ActionRefused,
    DisputeItem,
    NotFound,
    RunAction,
    RunDetail,
    RunSummary,
)
from cloud.apportion.run_page import PAGE_ROWS, SEARCH_MAX, PageView, RunPage, RunPageService
from cloud.leases.tenants import tenant_names, tenants_named
from cloud.staff.accounts import Principal
from cloud.statements.links import IssuedLink, NoStatement, StatementKey
from cloud.web.deps import WebServices, principal, web_services
from cloud.web.finance_view import flag_views, refusal_text, trail_parties, trail_views
from cloud.web.rendering import language, render, translations

router = APIRouter(tags=["finance"])
Web = Annotated[WebServices, Depends(web_services)]
Who = Annotated[Principal, Depends(principal)]
RunId = Annotated[str, Path(min_length=1, max_length=36)]
Name = Annotated[str, Path(min_length=1, max_length=64)]
SiteQ = Annotated[str | None, Query(max_length=64)]
PeriodQ = Annotated[str | None, Query(pattern=r"^[1-9]\d{3}-(0[1-9]|1[0-2])$")]
DisputeId = Annotated[int, Path(ge=1, le=2**31 - 1)]
#: where a table of the run page starts (from 0); past the end: the last page
Start = Annotated[int, Query(ge=0, le=10**6)]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "not found in your sites"}}


# ----------------------------------------------------------------------------- models


class ActionIn(BaseModel):
    reason: str = Field(default="", max_length=2000)


class ActionOut(BaseModel):
    id: str
    status: str


class LinkOut(BaseModel):
    url: str
    expires_at: datetime


class RunStatementOut(BaseModel):
    """A statement of the run; ``signed`` and ``link`` once the run is posted."""

    statement: dict[str, Any]
    signed: dict[str, str] | None
    link: LinkOut | None


class ResolveIn(BaseModel):
    resolution: str = Field(min_length=1, max_length=2000)


# ----------------------------------------------------------------------------- shared


def _not_found(exc: NotFound) -> HTTPException:
    return HTTPException(404, str(exc))


def _link(request: Request, web: WebServices, key: StatementKey) -> IssuedLink | None:
    try:
        return web.links.link_for(key)
    except NoStatement:
        return None


def _link_url(request: Request, web: WebServices, link: IssuedLink) -> str:
    base = web.public_url or str(request.base_url).rstrip("/")
    return base + link.path()


# ----------------------------------------------------------------------------- pages


@router.get("/finance/runs", response_class=HTMLResponse)
def runs_page(
    request: Request, web: Web, who: Who, site: SiteQ = None, period: PeriodQ = None
) -> HTMLResponse:
    """Runs by period and site, held runs on top."""
    runs = web.runs.list_runs(who, site=site, period=period)
    return render(
        request, "finance_runs.html", {"runs": runs, "site": site or "", "period": period or ""}
    )


def run_url(run_id: str, lang: str, view: PageView, anchor: str = "") -> str:
    """The run page's address showing ``view`` (parameters at their defaults left out)."""
    query = {"lang": lang}
    if view.nodes_start:
        query["nodes_start"] = str(view.nodes_start)
    if view.statements_start:
        query["stmts_start"] = str(view.statements_start)
    if view.count != PAGE_ROWS:
        query["count"] = str(view.count)
    if view.flagged_only:
        query["flagged"] = "1"
    if view.search:
        query["q"] = view.search
    return f"/finance/runs/{quote(run_id)}?{urlencode(query)}" + (f"#{anchor}" if anchor else "")


def _page_links(run_id: str, lang: str, page: RunPage, view: PageView) -> dict[str, str | None]:
    """The run page's links to other pages of its tables: each keeps the language, the
    other table's place, the page size, the filter and the search."""
    here = replace(view, nodes_start=page.nodes.start, statements_start=page.statements.start)

    def to(anchor: str, **changes: Any) -> str:
        return run_url(run_id, lang, replace(here, **changes), anchor)

    nodes, statements = page.nodes, page.statements
    return {
        "nodes_previous": None
        if nodes.previous is None
        else to("tree-title", nodes_start=nodes.previous),
        "nodes_next": None if nodes.next is None else to("tree-title", nodes_start=nodes.next),
        "flagged_toggle": to("tree-title", nodes_start=0, flagged_only=not view.flagged_only),
        "stmts_previous": None
        if statements.previous is None
        else to("statements-title", statements_start=statements.previous),
        "stmts_next": None
        if statements.next is None
        else to("statements-title", statements_start=statements.next),
        "search_clear": to("statements-title", statements_start=0, search=""),
    }


@router.get("/finance/runs/{run_id}", response_class=HTMLResponse)
def run_page(
    request: Request,
    run_id: RunId,
    web: Web,
    who: Who,
    nodes_start: Start = 0,
    stmts_start: Start = 0,
    count: Annotated[int, Query(ge=1, le=PAGE_ROWS)] = PAGE_ROWS,
    flagged: bool = False,
    q: Annotated[str, Query(max_length=SEARCH_MAX)] = "",
) -> HTMLResponse:
    """A run: its summary, flags, reconciliation, actions and audit trail; its tree view
    with balances and flags (flagged nodes first, or ``flagged`` only) and its statements
    (``q``: a unit's or tenant's id or name, or part of one), each a page of ``count`` at a
    time from ``nodes_start`` and ``stmts_start`` (from 0)."""
    lang = language(request)
    view = PageView(nodes_start, stmts_start, count, flagged, q.strip())
    try:
        page = RunPageService(web.runs, tenants_named).page(who, run_id, view)
    except NotFound:
        return render(request, "error.html", {"message": "not_found"}, status_code=404)
    detail = page.detail
    held = detail.run.held and detail.run.status not in ("void", "posted")
    t = translations(lang)
    names = tenant_names(
        web.runs.sessions, {s.party for s in detail.statements} | trail_parties(detail.trail)
    )
    recon = detail.reconciliation
    flags = flag_views(detail.flags, t)  # holding ones first
    return render(
        request,
        "finance_run.html",
        {
            "d": detail,
            "run": detail.run,
            "page": page,
            "view": view,
            "links": _page_links(run_id, lang, page, view),
            "page_rows": PAGE_ROWS,
            "search_max": SEARCH_MAX,
            "flags": flags[:FLAGS_SHOWN],
            "flags_more": max(len(flags) - FLAGS_SHOWN, 0),
            "trail": trail_views(detail.trail, names, t),
            "names": names,
            "recon": recon,
            "recon_total": total(recon) if len(recon) > 1 else None,
            "remedies": web.closing.remedies(who, run_id) if held else None,
            "error": request.query_params.get("error", ""),
            "done": request.query_params.get("done", ""),
        },
    )


#: The actions the pages ask to confirm first (on a page of their own: no JavaScript needed).
CONFIRMED_ACTIONS = frozenset({RunAction.POST, RunAction.VOID})
#: Most of a run's flags its page lists (holding ones first); the meter tree shows each
#: node's, and its "flagged only" filter pages through them.
FLAGS_SHOWN = 100
#: The value of the ``confirm`` field of a confirmation page's form.
CONFIRM_VALUE = "yes"


@router.get("/finance/runs/{run_id}/{action}", response_class=HTMLResponse)
def run_confirm_page(
    request: Request,
    run_id: RunId,
    action: RunAction,
    web: Web,
    who: Who,
    reason: Annotated[str, Query(max_length=2000)] = "",
) -> Response:
    """Post or void, asked first: the run's site, period, total, statements and who did
    what, a confirm form and a cancel link (review and approve: back to the run's page)."""
    lang = language(request)
    try:  # one node and one statement: the page needs the counts, not the rows
        page = RunPageService(web.runs, tenants_named).page(who, run_id, PageView(count=1))
    except NotFound:
        return render(request, "error.html", {"message": "not_found"}, status_code=404)
    if action not in CONFIRMED_ACTIONS:
        return RedirectResponse(f"/finance/runs/{quote(run_id)}?{urlencode({'lang': lang})}", 303)
    detail = page.detail
    steps = {
        e.action: e.actor for e in detail.trail if e.action in ("create", "reviewed", "approved")
    }
    return render(
        request,
        "finance_confirm.html",
        {
            "d": detail,
            "run": detail.run,
            "statements_total": page.statements.total,
            "action": action.value,
            "steps": steps,
            "reason": reason,
            "confirm_value": CONFIRM_VALUE,
        },
    )


@router.post("/finance/runs/{run_id}/{action}", response_class=HTMLResponse)
def run_action_form(
    request: Request,
    run_id: RunId,
    action: RunAction,
    web: Web,
    who: Who,
    reason: Annotated[str, Form(max_length=2000)] = "",
    confirm: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    """Review, approve, post or void the run; back to its page. Post and void are done
    only from their confirmation page (its ``confirm`` field); without it, nothing changes
    and the browser is sent to that page."""
    query = {"lang": language(request)}
    if action in CONFIRMED_ACTIONS and confirm != CONFIRM_VALUE:
        if reason:
            query["reason"] = reason
        return RedirectResponse(
            f"/finance/runs/{quote(run_id)}/{action.value}?{urlencode(query)}", 303
        )
    try:
        status = web.runs.act(who, run_id, action, reason)
        query["done"] = status
    except NotFound:
        return render(request, "error.html", {"message": "not_found"}, status_code=404)
    except ActionRefused as exc:
        query["error"] = refusal_text(
            exc.code, exc.params, str(exc), translations(language(request))
        )
    return RedirectResponse(f"/finance/runs/{quote(run_id)}?{urlencode(query)}", 303)


@router.get("/finance/disputes", response_class=HTMLResponse)
def disputes_page(
    request: Request,
    web: Web,
    who: Who,
    status: Annotated[str, Query(pattern="^(open|resolved|all)$")] = "open",
) -> HTMLResponse:
    """The disputes queue (open ones by default)."""
    items = web.runs.disputes(who, None if status == "all" else status)
    return render(
        request,
        "finance_disputes.html",
        {"items": items, "status": status, "error": request.query_params.get("error", "")},
    )


@router.post("/finance/disputes/{dispute_id}/resolve", response_class=HTMLResponse)
def dispute_resolve_form(
    request: Request,
    dispute_id: DisputeId,
    web: Web,
    who: Who,
    resolution: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Answer a dispute and close it."""
    query = {"lang": language(request)}
    try:
        web.runs.resolve_dispute(who, dispute_id, resolution)
    except NotFound:
        return render(request, "error.html", {"message": "not_found"}, status_code=404)
    except ActionRefused as exc:
        query["error"] = refusal_text(
            exc.code, exc.params, str(exc), translations(language(request))
        )
    return RedirectResponse(f"/finance/disputes?{urlencode(query)}", 303)


# ----------------------------------------------------------------------------- JSON API


@router.get("/api/v1/runs", response_model=list[RunSummary])
def api_runs(web: Web, who: Who, site: SiteQ = None, period: PeriodQ = None) -> list[RunSummary]:
    """Runs in your sites (``period``: YYYY-MM of the period's start), held runs first."""
    return web.runs.list_runs(who, site=site, period=period)


@router.get("/api/v1/runs/{run_id}", response_model=RunDetail, responses=_NOT_FOUND)
def api_run(run_id: RunId, web: Web, who: Who) -> RunDetail:
    """A run with its tree balances, statements and audit trail."""
    try:
        return web.runs.run_detail(who, run_id)
    except NotFound as exc:
        raise _not_found(exc) from None


@router.post(
    "/api/v1/runs/{run_id}/{action}",
    response_model=ActionOut,
    responses={**_NOT_FOUND, 409: {"description": "the run's state refuses it"}},
)
def api_run_action(
    run_id: RunId, action: RunAction, web: Web, who: Who, body: ActionIn | None = None
) -> ActionOut:
    """Review, approve, post or void a run (void needs a reason)."""
    try:
        status = web.runs.act(who, run_id, action, body.reason if body else "")
    except NotFound as exc:
        raise _not_found(exc) from None
    except ActionRefused as exc:
        raise HTTPException(409, str(exc)) from None
    return ActionOut(id=run_id, status=status)


@router.get(
    "/api/v1/runs/{run_id}/statements/{unit}/{party}",
    response_model=RunStatementOut,
    responses=_NOT_FOUND,
)
def api_run_statement(
    request: Request, run_id: RunId, unit: Name, party: Name, web: Web, who: Who
) -> RunStatementOut:
    """A statement of the run; once posted, its signed form and the tenant's link."""
    try:
        document, signed = web.runs.statement(who, run_id, unit, party)
    except NotFound as exc:
        raise _not_found(exc) from None
    link = _link(request, web, StatementKey(run_id, unit, party)) if signed else None
    return RunStatementOut(
        statement=document,
        signed=signed,
        link=LinkOut(url=_link_url(request, web, link), expires_at=link.expires_at)
        if link
        else None,
    )


@router.get(
    "/api/v1/runs/{run_id}/lines.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}, **_NOT_FOUND},
)
def api_run_lines_csv(request: Request, run_id: RunId, web: Web, who: Who) -> Response:
    """Every line of the run as CSV: UTF-8 with a BOM, headers in the chosen language
    (Chinese; ``?lang=en``), numbers as numbers, days inclusive."""
    lang = language(request)
    try:
        data = web.runs.export_csv(who, run_id, translations(lang))
    except NotFound as exc:
        raise _not_found(exc) from None
    return Response(
        data,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="run-{run_id}.csv"',
            "Content-Language": lang,
        },
    )


_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@router.get(
    "/api/v1/runs/{run_id}/lines.xlsx",
    response_class=Response,
    responses={200: {"content": {_XLSX: {}}}, **_NOT_FOUND},
)
def api_run_lines_xlsx(request: Request, run_id: RunId, web: Web, who: Who) -> Response:
    """The run as an Excel workbook (lines and statements with totals, the meter tree, the
    run in the site's local time), in the chosen language (Chinese; ``?lang=en``)."""
    lang = language(request)
    try:
        data = web.runs.export_xlsx(who, run_id, translations(lang))
    except NotFound as exc:
        raise _not_found(exc) from None
    return Response(
        data,
        media_type=_XLSX,
        headers={
            "Content-Disposition": f'attachment; filename="run-{run_id}.xlsx"',
            "Content-Language": lang,
        },
    )


@router.get("/api/v1/disputes", response_model=list[DisputeItem])
def api_disputes(
    web: Web, who: Who, status: Annotated[str, Query(pattern="^(open|resolved|all)$")] = "open"
) -> list[DisputeItem]:
    """The disputes queue of your sites."""
    return web.runs.disputes(who, None if status == "all" else status)


@router.post(
    "/api/v1/disputes/{dispute_id}/resolve",
    status_code=204,
    responses={**_NOT_FOUND, 409: {"description": "resolved already"}},
)
def api_dispute_resolve(dispute_id: DisputeId, body: ResolveIn, web: Web, who: Who) -> Response:
    """Answer a dispute and close it."""
    try:
        web.runs.resolve_dispute(who, dispute_id, body.resolution)
    except NotFound as exc:
        raise _not_found(exc) from None
    except ActionRefused as exc:
        raise HTTPException(409, str(exc)) from None
    return Response(status_code=204)
