"""The tenant's statement page (``/t/{unit}/{token}``, mobile first) and its JSON twin: the
signed statement, verified, with the tenant's confirm and dispute answers.

The link in the path is the tenant's only credential (:mod:`cloud.statements.links`); a link that
does not open its statement gets a refusal page saying why, never another unit's data.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from cloud.statements.access import MAX_NAME_CHARS, AnswerError, NotGenuine, TenantStatement
from cloud.statements.download import statement_csv, statement_filename
from cloud.statements.links import LinkRefused, OpenedLink, RefusalReason
from cloud.statements.wording import statement_view
from cloud.web.chart import composition_svg, history_svg
from cloud.web.deps import WebServices, web_services
from cloud.web.rendering import html_response, language, render, render_html, translations

router = APIRouter(tags=["tenant"])


async def _web(request: Request) -> WebServices:
    """The web services, looked up on the event loop: FastAPI runs a plain ``def``
    dependency in the thread pool, a round trip through it for every request (the page's
    handler itself runs on the event loop)."""
    return web_services(request)


Web = Annotated[WebServices, Depends(_web)]
MAX_UNIT, MAX_TOKEN = 64, 200
Unit = Annotated[str, Path(min_length=1, max_length=MAX_UNIT)]
Token = Annotated[str, Path(min_length=1, max_length=MAX_TOKEN)]
#: the pages take any path segment and refuse a bad one with a page, never JSON
PageSegment = Annotated[str, Path()]

#: HTTP status of each refusal: a link that is not (or no longer) good is gone.
_STATUS = {RefusalReason.EXPIRED: 410, RefusalReason.REVOKED: 410, RefusalReason.WITHDRAWN: 410}


class HistoryOut(BaseModel):
    period_start: str
    cents: int
    own_kwh: str


class AnswerOut(BaseModel):
    confirmed_at: datetime | None
    dispute_id: int | None
    dispute_status: str
    dispute_comment: str
    dispute_resolution: str


class TenantStatementOut(BaseModel):
    """The verified statement (``statement``: the signed document, unchanged), the
    signature facts, the 12-month history and the tenant's answer so far."""

    genuine: bool = Field(description="the signature verified with the cloud's key")
    kid: str
    signed: dict[str, str] = Field(description="payload, kid, alg and signature, as signed")
    statement: dict[str, Any]
    history: list[HistoryOut]
    answer: AnswerOut
    notice_language: str | None = Field(
        None, description="the language of the tenant's notices; null: no notices are sent"
    )


class LanguageIn(BaseModel):
    language: Literal["zh-CN", "en"] = Field(description="the language of the tenant's notices")


class DisputeIn(BaseModel):
    comment: str = Field(min_length=1, max_length=2000)


class ConfirmIn(BaseModel):
    name: str = Field(
        min_length=1, max_length=MAX_NAME_CHARS, description="the name the tenant types"
    )


class AnswerResult(BaseModel):
    status: str
    dispute_id: int | None = None


def _refusal_page(request: Request, refused: LinkRefused) -> HTMLResponse:
    return render(
        request,
        "tenant_refused.html",
        {"reason": refused.reason.value},
        status_code=_STATUS.get(refused.reason, 403),
    )


def _open(web: WebServices, unit: str, token: str) -> OpenedLink:
    _check_segments(unit, token)
    return web.links.open(unit, token)


def _check_segments(unit: str, token: str) -> None:
    """LinkRefused (malformed) for a unit or token longer than a link ever has."""
    if not unit or not token or len(unit) > MAX_UNIT or len(token) > MAX_TOKEN:
        raise LinkRefused(RefusalReason.MALFORMED, "the link is damaged")


def _api_refusal(refused: LinkRefused) -> HTTPException:
    return HTTPException(_STATUS.get(refused.reason, 403), f"{refused.reason.value}: {refused}")


def _page_url(request: Request, unit: str, token: str, **query: str) -> str:
    return f"/t/{unit}/{token}?" + urlencode({"lang": language(request), **query})


class _PageCache:
    """Rendered statement pages by everything they show (the verified statement's signature,
    its history, the tenant's answer, language, link, notices). Statements are immutable
    and every request still opens the link and reads the statement's row in the registry
    (one round trip, :meth:`~cloud.statements.access.TenantStatementService.open_statement`),
    so a hit never shows what the registry no longer holds; it saves the rendering."""

    def __init__(self, size: int = 2048) -> None:
        self.size = size
        self._pages: OrderedDict[tuple[Any, ...], str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> str | None:
        with self._lock:
            html = self._pages.get(key)
            if html is not None:
                self._pages.move_to_end(key)
            return html

    def put(self, key: tuple[Any, ...], html: str) -> None:
        with self._lock:
            self._pages[key] = html
            while len(self._pages) > self.size:
                self._pages.popitem(last=False)


_PAGES = _PageCache()


def _opened(
    request: Request, web: WebServices, unit: str, token: str
) -> TenantStatement | HTMLResponse:
    """The statement the link opens, verified; else the refusal page saying why (an expired
    or revoked link, a statement that is not the one signed)."""
    try:
        _check_segments(unit, token)
        return web.statements.open_statement(web.links, unit, token)[1]
    except LinkRefused as refused:
        return _refusal_page(request, refused)
    except NotGenuine:
        return render(request, "tenant_refused.html", {"reason": "not_genuine"}, status_code=409)


def _page(
    request: Request,
    web: WebServices,
    unit: str,
    token: str,
    *,
    error: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    statement = _opened(request, web, unit, token)
    if isinstance(statement, HTMLResponse):
        return statement
    done = request.query_params.get("done", "")
    lang = language(request)
    key = (
        statement.signature,
        tuple(statement.history),
        statement.answer,
        statement.notice_language,
        lang,
        unit,
        token,
        done,
        error,
    )
    html = _PAGES.get(key) if web.page_cache else None
    if html is None:
        t = translations(lang)
        chart = history_svg(
            statement.history,
            t["chart_history_title"],
            statement.document["period"]["start"],
            t["chart_axis_cny"],
        )
        view = statement_view(statement.document, lang)
        composition = (
            composition_svg(view.composition, t["chart_composition_title"], t["chart_axis_cny"])
            if view is not None
            else ""
        )
        html = render_html(
            request,
            "tenant_statement.html",
            {
                "st": statement,
                "doc": statement.document,
                "view": view,
                "chart": chart,
                "composition": composition,
                "unit": unit,
                "token": token,
                "error": error,
                "done": done,
                "base": f"/t/{unit}/{token}",
            },
        )
        if web.page_cache:
            _PAGES.put(key, html)
    return html_response(request, html, status_code)


@router.get("/t/{unit}/{token}", response_class=HTMLResponse)
async def tenant_page(
    request: Request, unit: PageSegment, token: PageSegment, web: Web
) -> HTMLResponse:
    """The tenant's statement page (Chinese; ``?lang=en`` for English)."""
    return _page(request, web, unit, token)


@router.get("/t/{unit}/{token}/statement.csv", response_class=Response)
def tenant_statement_csv(
    request: Request, unit: PageSegment, token: PageSegment, web: Web
) -> Response:
    """The statement's lines and total as a CSV file for Excel (UTF-8 with a BOM), in the
    page's language (``?lang=en`` for English); a link that does not open the statement
    gets the refusal page."""
    statement = _opened(request, web, unit, token)
    if isinstance(statement, HTMLResponse):
        return statement
    return Response(
        statement_csv(statement.document, language(request)),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": (
                f'attachment; filename="{statement_filename(statement.document)}"'
            ),
            "Cache-Control": "no-store",
        },
    )


@router.post("/t/{unit}/{token}/confirm", response_class=HTMLResponse)
def tenant_confirm_form(
    request: Request,
    unit: PageSegment,
    token: PageSegment,
    web: Web,
    name: Annotated[str, Form()] = "",
) -> Response:
    """The tenant confirms the statement with the name they type (required)."""
    try:
        web.statements.confirm(_open(web, unit, token), name)
    except LinkRefused as refused:
        return _refusal_page(request, refused)
    except (AnswerError, NotGenuine) as exc:
        return _page(request, web, unit, token, error=str(exc), status_code=409)
    return RedirectResponse(_page_url(request, unit, token, done="confirmed"), 303)


@router.post("/t/{unit}/{token}/language", response_class=HTMLResponse)
def tenant_language_form(
    request: Request,
    unit: PageSegment,
    token: PageSegment,
    web: Web,
    language_: Annotated[str, Form(alias="language", max_length=20)] = "",
) -> Response:
    """The tenant chooses the language of their notices (zh-CN or en)."""
    try:
        web.statements.set_notice_language(_open(web, unit, token), language_)
    except LinkRefused as refused:
        return _refusal_page(request, refused)
    except AnswerError as exc:
        return _page(request, web, unit, token, error=str(exc), status_code=409)
    return RedirectResponse(_page_url(request, unit, token, done="language"), 303)


@router.post("/t/{unit}/{token}/dispute", response_class=HTMLResponse)
def tenant_dispute_form(
    request: Request,
    unit: PageSegment,
    token: PageSegment,
    web: Web,
    comment: Annotated[str, Form()] = "",
) -> Response:
    """The tenant disputes the statement with a comment (opens a dispute for finance)."""
    try:
        web.statements.dispute(_open(web, unit, token), comment)
    except LinkRefused as refused:
        return _refusal_page(request, refused)
    except (AnswerError, NotGenuine) as exc:
        return _page(request, web, unit, token, error=str(exc), status_code=409)
    return RedirectResponse(_page_url(request, unit, token, done="disputed"), 303)


def _out(statement: TenantStatement, signed: dict[str, str]) -> TenantStatementOut:
    a = statement.answer
    return TenantStatementOut(
        genuine=True,
        kid=statement.kid,
        signed=signed,
        statement=statement.document,
        history=[
            HistoryOut(
                period_start=p.period_start.isoformat(), cents=p.cents, own_kwh=str(p.own_kwh)
            )
            for p in statement.history
        ],
        answer=AnswerOut(
            confirmed_at=a.confirmed_at,
            dispute_id=a.dispute_id,
            dispute_status=a.dispute_status,
            dispute_comment=a.dispute_comment,
            dispute_resolution=a.dispute_resolution,
        ),
        notice_language=statement.notice_language,
    )


_REFUSALS: dict[int | str, dict[str, Any]] = {
    403: {"description": "the link does not open this unit's statement"},
    409: {"description": "the statement does not verify, or the answer was given already"},
    410: {"description": "the link expired or was revoked, or the run was voided"},
}


@router.get("/api/v1/tenant/{unit}/{token}", response_model=TenantStatementOut, responses=_REFUSALS)
def api_tenant_statement(unit: Unit, token: Token, web: Web) -> TenantStatementOut:
    """The link's verified statement, history and answer (what the tenant page shows)."""
    try:
        opened, statement = web.statements.open_statement(web.links, unit, token)
        return _out(statement, web.statements.signed_export(opened))
    except LinkRefused as refused:
        raise _api_refusal(refused) from None
    except NotGenuine as exc:
        raise HTTPException(409, f"not genuine: {exc}") from None


@router.post(
    "/api/v1/tenant/{unit}/{token}/confirm", response_model=AnswerResult, responses=_REFUSALS
)
def api_tenant_confirm(unit: Unit, token: Token, body: ConfirmIn, web: Web) -> AnswerResult:
    """Confirm the statement with the name the tenant typed (stored, shown to finance)."""
    try:
        web.statements.confirm(_open(web, unit, token), body.name)
    except LinkRefused as refused:
        raise _api_refusal(refused) from None
    except (AnswerError, NotGenuine) as exc:
        raise HTTPException(409, str(exc)) from None
    return AnswerResult(status="confirmed")


@router.post(
    "/api/v1/tenant/{unit}/{token}/language", response_model=AnswerResult, responses=_REFUSALS
)
def api_tenant_language(unit: Unit, token: Token, body: LanguageIn, web: Web) -> AnswerResult:
    """Choose the language of the tenant's notices (zh-CN or en); 409 when the statement's
    party is no registered tenant."""
    try:
        web.statements.set_notice_language(_open(web, unit, token), body.language)
    except LinkRefused as refused:
        raise _api_refusal(refused) from None
    except AnswerError as exc:
        raise HTTPException(409, str(exc)) from None
    return AnswerResult(status=f"language:{body.language}")


@router.post(
    "/api/v1/tenant/{unit}/{token}/dispute", response_model=AnswerResult, responses=_REFUSALS
)
def api_tenant_dispute(unit: Unit, token: Token, body: DisputeIn, web: Web) -> AnswerResult:
    """Dispute the statement with a comment."""
    try:
        dispute_id = web.statements.dispute(_open(web, unit, token), body.comment)
    except LinkRefused as refused:
        raise _api_refusal(refused) from None
    except (AnswerError, NotGenuine) as exc:
        raise HTTPException(409, str(exc)) from None
    return AnswerResult(status="disputed", dispute_id=dispute_id)


def is_page_path(path: str) -> bool:
    """A path under the tenant pages (``/t/…``), not the tenant API."""
    return path == "/t" or path.startswith("/t/")


def malformed_link_page(request: Request) -> HTMLResponse:
    """The refusal page for an address under ``/t/`` that is no statement link (truncated,
    damaged, with extra segments): 400 and the page saying the link is incomplete or
    damaged, never JSON (registered in :func:`cloud.web.app.create_app` for 404 and 405)."""
    return render(request, "tenant_refused.html", {"reason": "malformed"}, status_code=400)
