"""Server-side rendering of the pages: the Jinja2 environment, the translations (one JSON
file per language under ``i18n/``, Chinese by default, ``?lang=en`` for English), and the
filters that print money, energy and times the way statements do."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from cloud.apportion.money import cny
from cloud.leases.notices import DEPOSIT_STEPS
from cloud.web.navigation import nav_links
from cloud.wording import DEFAULT_LANGUAGE, LANGUAGES

HERE = Path(__file__).parent
DISPLAY_ZONE = "Asia/Shanghai"


@cache
def translations(lang: str) -> dict[str, str]:
    """The strings of one language; a key missing there falls back to Chinese. A deposit
    refund's steps (``deposit_step_*``) are the notices' words
    (:data:`cloud.leases.notices.DEPOSIT_STEPS`, their one copy)."""
    base = json.loads((HERE / "i18n" / f"{DEFAULT_LANGUAGE}.json").read_text(encoding="utf-8"))
    if lang != DEFAULT_LANGUAGE:
        base = {**base, **json.loads((HERE / "i18n" / f"{lang}.json").read_text("utf-8"))}
    for step, words in DEPOSIT_STEPS.items():
        base[f"deposit_step_{step}"] = words.get(lang) or words[DEFAULT_LANGUAGE]
    return base


def language(request: Request) -> str:
    """``?lang=en`` or ``?lang=zh-CN``; Chinese otherwise."""
    asked = request.query_params.get("lang", "")
    return asked if asked in LANGUAGES else DEFAULT_LANGUAGE


def yuan(cents: int | str) -> str:
    """Integer cents as yuan with two decimals (``25740`` → ``257.40``)."""
    return cny(int(cents))


def local_time(value: datetime | str | None, zone: str = DISPLAY_ZONE) -> str:
    """An instant in the site's local time, to the minute (``—`` when unknown)."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


def last_day(end: str | date) -> str:
    """The last day of a half-open period ending at ``end`` (exclusive)."""
    day = date.fromisoformat(end) if isinstance(end, str) else end
    return (day - timedelta(days=1)).isoformat()


def percent(value: str | float | None) -> str:
    """A ratio as a percentage with two decimals."""
    return "—" if value is None else f"{float(value) * 100:.2f} %"


def age(seconds: float | None) -> str:
    """A duration for people: ``42 s``, ``5 min``, ``3.2 h``."""
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.filters.update(
    yuan=yuan, local_time=local_time, last_day=last_day, percent=percent, age=age
)
templates.env.globals.update(languages=LANGUAGES, nav_links=nav_links)


def render_html(request: Request, template: str, context: dict[str, Any] | None = None) -> str:
    """A page's HTML in the request's language; ``t`` translates, ``lang`` names it."""
    lang = language(request)
    ctx = {
        "request": request,
        "t": translations(lang),
        "lang": lang,
        "principal": getattr(request.state, "principal", None),
        **(context or {}),
    }
    return templates.get_template(template).render(ctx)


def html_response(request: Request, html: str, status_code: int = 200) -> HTMLResponse:
    """An HTML answer that says its language."""
    return HTMLResponse(
        html, status_code=status_code, headers={"Content-Language": language(request)}
    )


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status_code: int = 200
) -> HTMLResponse:
    """Render a page in the request's language (see :func:`render_html`)."""
    return html_response(request, render_html(request, template, context), status_code)
