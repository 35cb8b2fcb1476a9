"""Finance closes a month: pick the site and period, enter the utility company's bill, see the
draft (the page), or the same in one JSON call (the API). Thin over
:class:`cloud.apportion.close.CloseService`."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from cloud.apportion.close import ClosedRun, CloseRefused
from cloud.apportion.errors import ApportionError
from cloud.apportion.statement import line_rows
from cloud.series.csvimport import ImportRefused
from cloud.staff.accounts import Principal
from cloud.web.deps import WebServices, principal, web_services
from cloud.web.rendering import language, render, translations

router = APIRouter(tags=["close"])
Web = Annotated[WebServices, Depends(web_services)]
Who = Annotated[Principal, Depends(principal)]
_Amount = Annotated[Decimal, Field(ge=0, lt=Decimal(10) ** 12, allow_inf_nan=False)]
#: Largest form read [fields]; a bill has a handful.
_MAX_FIELDS = 40


class BillIn(BaseModel):
    """The utility company's invoice: amounts per register [CNY], demand charge."""

    invoice: str = Field(min_length=1, max_length=64)
    amounts: dict[Annotated[str, Field(max_length=16)], _Amount] = Field(max_length=8)
    demand: _Amount | None = None
    demand_kw: _Amount | None = None


class CloseIn(BaseModel):
    """A close: site, period [start, end) of the site's calendar, the bill."""

    site: str = Field(min_length=1, max_length=64)
    start: date
    end: date
    bill: BillIn
    accept_estimates: dict[Annotated[str, Field(max_length=64)], str] = Field(
        default_factory=dict, max_length=50, description="node → reason"
    )


class PotOut(BaseModel):
    """One pot: a register under one tariff version [cents]."""

    model_config = ConfigDict(populate_by_name=True)

    register_: str = Field(alias="register")
    tariff: str
    cents: int


class CloseOut(BaseModel):
    """The stored run: its id, version, state, flags, pots and totals per party [cents]."""

    run: str
    version: int
    supersedes: str | None
    status: str
    held: bool
    flags: list[dict[str, Any]]
    pots: list[PotOut]
    totals: dict[str, int]
    bill_cents: int
    lines_cents: int
    interpolated_readings: int
    missing_readings: list[dict[str, str]]


def close_out(closed: ClosedRun) -> CloseOut:
    """The API's answer for a stored close."""
    totals: dict[str, int] = {}
    for row in line_rows(closed.result):
        totals[row.party] = totals.get(row.party, 0) + row.cents
    pots = [
        PotOut(register_=p.register, tariff=p.version, cents=p.cents) for p in closed.result.pots
    ]
    return CloseOut(
        run=closed.run.id,
        version=closed.run.version,
        supersedes=closed.run.supersedes_id,
        status=closed.run.status,
        held=closed.run.held,
        flags=list(closed.run.flags),
        pots=pots,
        totals=dict(sorted(totals.items())),
        bill_cents=sum(p.cents for p in pots),
        lines_cents=sum(totals.values()),
        interpolated_readings=closed.interpolated,
        missing_readings=[{"meter": m, "day": d} for m, d in closed.missing],
    )


@router.post(
    "/api/v1/close",
    response_model=CloseOut,
    status_code=201,
    responses={
        403: {"description": "not one of your sites"},
        400: {"description": "malformed request (names the field)"},
        422: {"description": "refused input (period, bill, site data, readings)"},
    },
)
def api_close(body: CloseIn, web: Web, who: Who) -> CloseOut:
    """Close a site's period against the utility bill: a draft run (``held`` says whether
    it can be approved as it is). Closing a period again stores a new version."""
    try:
        closed = web.closing.close(
            who,
            site_id=body.site,
            start=body.start,
            end=body.end,
            bill=body.bill.model_dump(exclude_none=True),
            accept=sorted(body.accept_estimates.items()),
        )
    except CloseRefused as exc:
        raise HTTPException(403 if "not one of your sites" in str(exc) else 422, str(exc)) from None
    except ApportionError as exc:
        raise HTTPException(422, str(exc)) from None
    return close_out(closed)


def close_error_text(exc: Exception, t: dict[str, str]) -> str:
    """Why a close or a held run's remedy was refused, in the reader's language: the
    refusal's ``code`` and ``params`` worded by the page (:class:`CloseRefused`); for
    refused input (bill, readings, site data) a sentence in the reader's language with the
    item named as the check gave it."""
    if isinstance(exc, CloseRefused) and exc.code:
        params = dict(exc.params)
        if "role" in params:
            params["role"] = t.get(f"role_{params['role']}", params["role"])
        for many in ("nodes", "held"):
            if many in params:
                params[many] = t["list_sep"].join(params[many]) or "—"
        try:
            return t[f"close_err_{exc.code}"].format(**params)
        except (KeyError, IndexError):  # words without this code or value: the English
            return str(exc)
    if isinstance(exc, ImportRefused):
        return t["close_err_reading_store"].format(detail="; ".join(exc.problems[:3]))
    if isinstance(exc, CloseRefused):
        return str(exc)
    return t["close_err_input"].format(detail=str(exc)[:1000])


def _last_month(today: date) -> tuple[date, date]:
    first = today.replace(day=1)
    return (first - timedelta(days=1)).replace(day=1), first


@router.get("/finance/close", response_class=HTMLResponse)
def close_page(
    request: Request,
    web: Web,
    who: Who,
    site: Annotated[str, Query(max_length=64)] = "",
) -> HTMLResponse:
    """Pick the site and period and enter the bill."""
    sites = web.closing.sites(who)
    chosen = next((s for s in sites if s.id == site), sites[0] if len(sites) == 1 else None)
    start, end = _last_month(web.closing.clock().date())
    return render(
        request,
        "finance_close.html",
        {"sites": sites, "chosen": chosen, "form": {"start": start, "end": end}, "error": ""},
    )


@router.post("/finance/close", response_class=HTMLResponse)
async def close_form(request: Request, web: Web, who: Who) -> Response:
    """Close from the form; to the new run's page, or back to the form with the error."""
    form = await request.form(max_fields=_MAX_FIELDS, max_files=0)
    values = {k: str(v)[:200] for k, v in form.items() if isinstance(v, str)}
    sites = web.closing.sites(who)
    chosen = next((s for s in sites if s.id == values.get("site")), None)
    t = translations(language(request))
    error = ""
    try:
        if chosen is None:
            raise CloseRefused("choose one of your sites", "choose_site")
        start, end = date.fromisoformat(values["start"]), date.fromisoformat(values["end"])
        bill: dict[str, Any] = {
            "invoice": values.get("invoice", "").strip(),
            "amounts": {r: values.get(f"amount_{r}", "").strip() for r in chosen.registers},
        }
        if values.get("demand", "").strip():
            bill["demand"] = values["demand"].strip()
        if values.get("demand_kw", "").strip():
            bill["demand_kw"] = values["demand_kw"].strip()
        closed = web.closing.close(who, site_id=chosen.id, start=start, end=end, bill=bill)
    except (KeyError, ValueError):
        error = t["close_err_date"]
    except ApportionError as exc:
        error = close_error_text(exc, t)
    if error:
        return render(
            request,
            "finance_close.html",
            {"sites": sites, "chosen": chosen, "form": values, "error": error},
            status_code=422,
        )
    query = {"lang": language(request), "done": "held" if closed.run.held else "draft"}
    return RedirectResponse(f"/finance/runs/{quote(closed.run.id)}?{urlencode(query)}", 303)


# ----------------------------------------------------------------------------- held runs

RunId = Annotated[str, PathParam(min_length=1, max_length=36)]


def _back(request: Request, run_id: str, **query: str) -> RedirectResponse:
    query["lang"] = language(request)
    return RedirectResponse(f"/finance/runs/{quote(run_id)}?{urlencode(query)}", 303)


@router.post("/finance/runs/{run_id}/manual-reading", response_class=HTMLResponse)
async def manual_reading_form(request: Request, run_id: RunId, web: Web, who: Who) -> Response:
    """A held run's remedy: enter a reading it lacked, as read on the meter's display."""
    form = await request.form(max_fields=_MAX_FIELDS, max_files=0)
    values = {k: str(v)[:200] for k, v in form.items() if isinstance(v, str)}
    try:
        day = date.fromisoformat(values.get("day", ""))
        web.closing.enter_reading(
            who,
            run_id,
            values.get("meter", ""),
            day,
            values.get("value", ""),
            values.get("note", ""),
        )
    except ValueError:
        return _back(request, run_id, error=translations(language(request))["close_err_date"])
    except (ApportionError, ImportRefused) as exc:
        return _back(request, run_id, error=close_error_text(exc, translations(language(request))))
    return _back(request, run_id, done="reading")


@router.post("/finance/runs/{run_id}/close-again", response_class=HTMLResponse)
async def close_again_form(request: Request, run_id: RunId, web: Web, who: Who) -> Response:
    """A held run's remedy: close its period again (a new version), accepting the estimates
    of the nodes ticked, with the reason given."""
    form = await request.form(max_fields=_MAX_FIELDS, max_files=0)
    reason = str(form.get("reason", ""))[:500].strip()
    nodes = [str(v)[:64] for k, v in form.multi_items() if k == "accept"]
    t = translations(language(request))
    if nodes and not reason:
        return _back(request, run_id, error=t["close_err_accept_reason"])
    try:
        closed = web.closing.close_again(who, run_id, [(n, reason) for n in nodes])
    except ApportionError as exc:
        return _back(request, run_id, error=close_error_text(exc, t))
    return _back(request, closed.run.id, done="held" if closed.run.held else "draft")


class CloseAgainIn(BaseModel):
    """Accept the estimates over the limit of these nodes (node → reason)."""

    accept_estimates: dict[Annotated[str, Field(max_length=64)], str] = Field(
        default_factory=dict, max_length=50
    )


@router.post(
    "/api/v1/runs/{run_id}/close-again",
    response_model=CloseOut,
    status_code=201,
    responses={422: {"description": "refused (names the reason)"}},
)
def api_close_again(
    run_id: RunId, web: Web, who: Who, body: CloseAgainIn | None = None
) -> CloseOut:
    """Close a run's site and period again with its own bill: a new version that supersedes
    it (after a manual reading, a corrected site file, or accepting estimates)."""
    accept = sorted((body.accept_estimates if body else {}).items())
    try:
        return close_out(web.closing.close_again(who, run_id, accept))
    except ApportionError as exc:
        raise HTTPException(422, str(exc)) from None
