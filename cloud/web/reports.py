"""The lease reports for the people who run the portfolio: an index page, one page a report
(chart, the figures as a table, filters, CSV and Excel exports) and their JSON API
(decision 0035). Thin: the figures come from :mod:`cloud.leases.reports`, the tables from
:mod:`cloud.leases.report_exports`.

Who reads which report is :data:`cloud.leases.reports.REPORT_ROLES` (the route policies in
:mod:`cloud.web.authz` admit the same roles); each caller sees their sites and buildings.
Bad parameters (a day out of range, ``from`` after ``to``, a range over 36 months) answer
400 with what was expected.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from pydantic import BaseModel, Field

from cloud.apportion.exports import FORMAT_MONEY, FORMAT_PERCENT
from cloud.leases.models import PROPERTY_TYPES
from cloud.leases.report_exports import (
    FORMAT_AREA,
    Table,
    aging_table,
    collections_table,
    expiring_table,
    occupancy_table,
    table_csv,
    workbook,
)
from cloud.leases.report_mail import RecipientError
from cloud.leases.reports import (
    AgingOut,
    ExpiringOut,
    Filters,
    FunnelOut,
    OccupancyOut,
    Report,
    ReportError,
    ReportForbidden,
    reports_for,
)
from cloud.staff.accounts import Principal, Role
from cloud.web.chart import bars_svg
from cloud.web.deps import WebServices, principal, web_services
from cloud.web.rendering import language, render, translations
from cloud.wording import LANGUAGES

router = APIRouter(tags=["reports"])
Web = Annotated[WebServices, Depends(web_services)]
Who = Annotated[Principal, Depends(principal)]
_DAY = r"^([0-9]{4}-[0-9]{2}-[0-9]{2})?$"  # empty: not given (a form's empty field)
DayQ = Annotated[str | None, Query(pattern=_DAY, description="local day (default: today)")]
FromQ = Annotated[
    str | None, Query(alias="from", pattern=_DAY, description="first local day of a range")
]
ToQ = Annotated[
    str | None, Query(alias="to", pattern=_DAY, description="last local day of a range")
]
FormatQ = Annotated[str, Query(pattern="^(html|csv|xlsx)$")]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_BAD = {400: {"description": "a day out of range, from after to, or a range too long"}}


def report_filters(
    site: Annotated[str | None, Query(max_length=64)] = None,
    building: Annotated[str | None, Query(max_length=64)] = None,
    type: Annotated[str | None, Query(pattern="^(" + "|".join(PROPERTY_TYPES) + ")?$")] = None,
) -> Filters:
    """The filters of every report: site, building, property type (empty: none)."""
    return Filters(site=site or None, building=building or None, property_type=type or None)


Filt = Annotated[Filters, Depends(report_filters)]


def _run(produce: Callable[[], Any]) -> Any:
    try:
        return produce()
    except ReportError as exc:
        raise HTTPException(400, str(exc)) from None
    except ReportForbidden as exc:
        raise HTTPException(403, str(exc)) from None


def refused(request: Request, exc: HTTPException) -> HTMLResponse:
    """A report page asked for with bad parameters: the error page, saying what was wrong."""
    return render(
        request,
        "error.html",
        {"message": "report_params", "detail": exc.detail},
        status_code=exc.status_code,
    )


def day_of(text: str | None, name: str = "day") -> date | None:
    """A query's day (None when not given); HTTP 400 saying what was expected."""
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise HTTPException(400, f"{name} {text!r}: expected a calendar day YYYY-MM-DD") from None


def _series(first: date | None, last: date | None) -> tuple[date, date] | None:
    if first is None and last is None:
        return None
    if first is None or last is None:
        raise ReportError("from and to: expected both days of the range, or neither")
    return first, last


def cell_text(value: Any, fmt: str | None) -> str:
    """A table cell as the page prints it: rates as percentages, money with two decimals,
    nothing as a dash."""
    if value is None:
        return "—"
    if fmt == FORMAT_PERCENT:
        return f"{Decimal(value) * 100:.2f} %"
    if fmt in (FORMAT_MONEY, FORMAT_AREA):
        return f"{Decimal(value):,.2f}"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _page(
    request: Request,
    report: Report,
    table: Table,
    fmt: str,
    *,
    day: date,
    charts: list[Markup],
    fields: tuple[str, ...],
    values: dict[str, str],
    extra: dict[str, Any] | None = None,
) -> Response:
    if fmt in ("csv", "xlsx"):
        name = f"report-{report}-{day.isoformat()}.{fmt}"
        body, media = (
            (table_csv(table), "text/csv; charset=utf-8")
            if fmt == "csv"
            else (workbook([table]), XLSX)
        )
        return Response(
            body,
            media_type=media,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    lang = language(request)
    query = {k: v for k, v in values.items() if v}
    rows = [[cell_text(v, table.formats.get(i)) for i, v in enumerate(r)] for r in table.rows]
    return render(
        request,
        "report.html",
        {
            "report": report.value,
            "table": table,
            "rows": rows,
            "numeric": [
                i for i, v in enumerate(table.rows[0] if table.rows else []) if _is_number(v)
            ],
            "charts": charts,
            "fields": fields,
            "values": values,
            "types": PROPERTY_TYPES,
            "csv_href": "?" + urlencode({**query, "format": "csv", "lang": lang}),
            "xlsx_href": "?" + urlencode({**query, "format": "xlsx", "lang": lang}),
            **(extra or {}),
        },
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | Decimal) and not isinstance(value, bool)


def _values(filters: Filters, **days: date | None) -> dict[str, str]:
    out = {
        "site": filters.site or "",
        "building": filters.building or "",
        "type": filters.property_type or "",
    }
    out.update({k: v.isoformat() if v else "" for k, v in days.items()})
    return out


def _rate_bars(points: list[tuple[str, Decimal]], title: str) -> Markup:
    return bars_svg(
        [(label, float(r), f"{r * 100:.2f} %", f"{label}: {r * 100:.2f} %") for label, r in points],
        title,
        "%",
        css="composition bars",
        top=1.0,
    )


def occupancy_charts(report: OccupancyOut, t: dict[str, str]) -> list[Markup]:
    """The unit rate by group; with a series, the unit rate at each month end."""
    groups = [(t.get("report_group_total", "total"), report.total.unit_rate)]
    for g in report.groups:
        label = (
            g.site_id
            if g.by == "site"
            else f"{g.site_id}/{g.building or '—'}"
            if g.by == "building"
            else t.get(f"report_type_{g.property_type}", g.property_type)
        )
        groups.append((label, g.figures.unit_rate))
    charts = [_rate_bars(groups, t["report_chart_occupancy"])]
    if report.series:
        charts.append(
            _rate_bars(
                [(f"{f.day:%Y-%m}", f.unit_rate) for f in report.series],
                t["report_chart_occupancy_series"],
            )
        )
    return charts


def expiring_charts(report: ExpiringOut, t: dict[str, str]) -> list[Markup]:
    bars = [
        (t[f"report_risk_{risk}"], n, str(n), f"{t[f'report_risk_{risk}']}: {n}")
        for risk, n in report.counts.items()
    ]
    return [
        bars_svg(bars, t["report_chart_expiring"], t["report_unit_leases"], css="composition bars")
    ]


def aging_charts(report: AgingOut, t: dict[str, str]) -> list[Markup]:
    if report.withheld:  # the amounts are withheld: the invoices per bucket
        bars = [
            (
                b,
                report.total.invoices[b],
                str(report.total.invoices[b]),
                f"{b}: {report.total.invoices[b]}",
            )
            for b in report.buckets
        ]
        return [
            bars_svg(
                bars,
                t["report_chart_aging_count"],
                t["report_unit_invoices"],
                css="composition bars",
            )
        ]
    bars = []
    for b in report.buckets:
        cents = report.total.cents[b] or 0
        bars.append((b, cents, f"¥{cents / 100:,.2f}", f"{b}: ¥{cents / 100:,.2f}"))
    return [bars_svg(bars, t["report_chart_aging"], "¥", css="composition bars")]


def collections_charts(report: FunnelOut, t: dict[str, str]) -> list[Markup]:
    """How many invoices reached each rung (and were paid after it)."""
    paid = t["report_col_paid_after"]
    bars = [(t["report_funnel_overdue"], report.overdue, str(report.overdue))]
    for s in report.steps:
        label = t.get(f"report_action_{s.action}", s.action)
        bars.append((label, s.reached, f"{s.reached} · {paid} {s.paid_after}"))
    return [
        bars_svg(
            [(label, n, text, f"{label}: {text}") for label, n, text in bars],
            t["report_chart_collections"],
            t["report_unit_invoices"],
            css="composition bars",
        )
    ]


# ----------------------------------------------------------------------------- pages


@router.get("/reports", response_class=HTMLResponse)
def reports_page(request: Request, web: Web, who: Who) -> HTMLResponse:
    """The reports the caller's role reads; for an admin, who receives the monthly e-mail."""
    done = request.query_params.get("done", "") == "recipients"
    return _reports_page(request, web, who, done=done)


def _reports_page(
    request: Request, web: WebServices, who: Principal, status_code: int = 200, **extra: object
) -> HTMLResponse:
    recipients = web.report_recipients.by_site() if who.role is Role.ADMIN else None
    return render(
        request,
        "reports.html",
        {
            "reports": [r.value for r in reports_for(who.role)],
            "recipients": recipients,
            "languages": LANGUAGES,
            **extra,
        },
        status_code=status_code,
    )


@router.post("/reports/recipients", response_class=HTMLResponse)
def report_recipients_form(
    request: Request,
    web: Web,
    who: Who,
    site: Annotated[str, Form(max_length=64)] = "",
    add: Annotated[str, Form(max_length=200)] = "",
    remove: Annotated[str, Form(max_length=200)] = "",
    language_: Annotated[str, Form(alias="language", max_length=8)] = "",
) -> Response:
    """Add an address (with the language of its e-mail) to a site's monthly report e-mail,
    or remove one (admin; audited like the API's change)."""
    try:
        web.report_recipients.change(
            who,
            site.strip(),
            add=[add.strip()] if add.strip() else [],
            remove=[remove.strip()] if remove.strip() else [],
            language=language_ or None if add.strip() else None,
        )
    except RecipientError as exc:
        return _reports_page(request, web, who, recipients_error=str(exc), status_code=422)
    query = urlencode({"lang": language(request), "done": "recipients"})
    return RedirectResponse(f"/reports?{query}#recipients", 303)


@router.get("/reports/occupancy", response_class=HTMLResponse, responses=_BAD)
def report_occupancy_page(
    request: Request,
    web: Web,
    who: Who,
    filters: Filt,
    day: DayQ = None,
    first: FromQ = None,
    last: ToQ = None,
    format: FormatQ = "html",
) -> Response:
    """Occupancy on a day by site, building and property type, and at month ends of a
    range; ``format=csv`` or ``xlsx`` downloads the table."""
    try:
        when, a, b = day_of(day) or web.reports.today(), day_of(first, "from"), day_of(last, "to")
        report = _run(lambda: web.reports.occupancy(who, when, filters, _series(a, b)))
    except HTTPException as exc:
        return refused(request, exc)
    t = translations(language(request))
    return _page(
        request,
        Report.OCCUPANCY,
        occupancy_table(report, t),
        format,
        day=when,
        charts=occupancy_charts(report, t),
        fields=("site", "building", "type", "day", "from", "to"),
        values=_values(filters, day=when, **{"from": a, "to": b}),
    )


def _day_page(
    request: Request, web: WebServices, who: Principal, filters: Filters, day: str | None,
    fmt: str, report: Report,
) -> Response:  # fmt: skip
    """The page of a report of one day (expiring, aging)."""
    try:
        when = day_of(day) or web.reports.today()
        found = _run(lambda: getattr(web.reports, report.value)(who, when, filters))
    except HTTPException as exc:
        return refused(request, exc)
    t = translations(language(request))
    table, charts = {
        Report.EXPIRING: (expiring_table, expiring_charts),
        Report.AGING: (aging_table, aging_charts),
    }[report]
    return _page(
        request,
        report,
        table(found, t),
        fmt,
        day=when,
        charts=charts(found, t),
        fields=("site", "building", "type", "day"),
        values=_values(filters, day=when),
        extra={"withheld": getattr(found, "withheld", [])},
    )


@router.get("/reports/expiring", response_class=HTMLResponse, responses=_BAD)
def report_expiring_page(
    request: Request, web: Web, who: Who, filters: Filt, day: DayQ = None, format: FormatQ = "html"
) -> Response:
    """Leases expired or expiring within 7 or 30 days of a day, by tier."""
    return _day_page(request, web, who, filters, day, format, Report.EXPIRING)


@router.get("/reports/aging", response_class=HTMLResponse, responses=_BAD)
def report_aging_page(
    request: Request, web: Web, who: Who, filters: Filt, day: DayQ = None, format: FormatQ = "html"
) -> Response:
    """Outstanding money by days past due, per site and building, on a day."""
    return _day_page(request, web, who, filters, day, format, Report.AGING)


@router.get("/reports/collections", response_class=HTMLResponse, responses=_BAD)
def report_collections_page(
    request: Request,
    web: Web,
    who: Who,
    filters: Filt,
    first: FromQ = None,
    last: ToQ = None,
    format: FormatQ = "html",
) -> Response:
    """The collections funnel of invoices that became overdue in a period (default: this
    month up to today)."""
    today = web.reports.today()
    try:
        a = day_of(first, "from") or today.replace(day=1)
        b = day_of(last, "to") or today
        report = _run(lambda: web.reports.collections(who, a, b, filters))
    except HTTPException as exc:
        return refused(request, exc)
    t = translations(language(request))
    return _page(
        request,
        Report.COLLECTIONS,
        collections_table(report, t),
        format,
        day=b,
        charts=collections_charts(report, t),
        fields=("site", "building", "type", "from", "to"),
        values=_values(filters, **{"from": a, "to": b}),
    )


# ----------------------------------------------------------------------------- API


@router.get("/api/v1/reports/occupancy", response_model=OccupancyOut, responses=_BAD)
def api_report_occupancy(
    web: Web, who: Who, filters: Filt, day: DayQ = None, first: FromQ = None, last: ToQ = None
) -> OccupancyOut:
    """Occupancy (one definition) on ``day`` in total and by site, building and property
    type; with ``from`` and ``to``, also the total at each month end (≤ 36). Rates are exact
    decimal strings, rents in cents per month, areas in m²."""
    when, a, b = day_of(day) or web.reports.today(), day_of(first, "from"), day_of(last, "to")
    return _run(lambda: web.reports.occupancy(who, when, filters, _series(a, b)))


@router.get("/api/v1/reports/expiring", response_model=ExpiringOut, responses=_BAD)
def api_report_expiring(web: Web, who: Who, filters: Filt, day: DayQ = None) -> ExpiringOut:
    """Running leases expired (high), within 7 days (medium) or 30 days (low) of ``day``."""
    when = day_of(day) or web.reports.today()
    return _run(lambda: web.reports.expiring(who, when, filters))


@router.get("/api/v1/reports/aging", response_model=AgingOut, responses=_BAD)
def api_report_aging(web: Web, who: Who, filters: Filt, day: DayQ = None) -> AgingOut:
    """Outstanding cents of invoices past due on ``day`` by bucket (0-30, 31-60, 61-90, 90+
    days), per site and building; amounts ``null`` (and ``withheld``) for roles that do not
    see arrears."""
    when = day_of(day) or web.reports.today()
    return _run(lambda: web.reports.aging(who, when, filters))


@router.get("/api/v1/reports/collections", response_model=FunnelOut, responses=_BAD)
def api_report_collections(
    web: Web, who: Who, filters: Filt, first: FromQ = None, last: ToQ = None
) -> FunnelOut:
    """The collections funnel of invoices whose first overdue day is in [from, to]
    (default: this month up to today)."""
    today = web.reports.today()
    a = day_of(first, "from") or today.replace(day=1)
    b = day_of(last, "to") or today
    return _run(lambda: web.reports.collections(who, a, b, filters))


class RecipientsOut(BaseModel):
    """Who receives each site's monthly report e-mail, and in which language."""

    recipients: dict[str, list[str]]
    languages: dict[str, dict[str, str]] = Field(
        description="site → address → the language its e-mail is worded in (zh-CN or en)"
    )


class RecipientsIn(BaseModel):
    """Addresses to add to and remove from a site's recipients; ``language`` is that of the
    added addresses' e-mail (none: Chinese for a new address, an existing one keeps its
    own)."""

    site: str = Field(min_length=1, max_length=64)
    add: list[str] = Field(default_factory=list, max_length=50)
    remove: list[str] = Field(default_factory=list, max_length=50)
    language: Literal["zh-CN", "en"] | None = None


def _recipients_out(by_site: dict[str, dict[str, str]]) -> RecipientsOut:
    return RecipientsOut(recipients={s: list(by) for s, by in by_site.items()}, languages=by_site)


@router.get("/api/v1/reports/recipients", response_model=RecipientsOut)
def api_report_recipients(
    web: Web, site: Annotated[str | None, Query(max_length=64)] = None
) -> RecipientsOut:
    """The recipients of the monthly report e-mail, per site (admin)."""
    return _recipients_out(web.report_recipients.by_site(site or None))


@router.post(
    "/api/v1/reports/recipients",
    response_model=RecipientsOut,
    responses={422: {"description": "a malformed address, an unknown site, too many"}},
)
def api_report_recipients_change(web: Web, who: Who, body: RecipientsIn) -> RecipientsOut:
    """Add and remove recipients of a site's monthly report e-mail (admin; audited)."""
    try:
        now = web.report_recipients.change(
            who, body.site, add=body.add, remove=body.remove, language=body.language
        )
    except RecipientError as exc:
        raise HTTPException(422, str(exc)) from None
    return _recipients_out({body.site: now})
