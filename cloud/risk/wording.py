"""Move-out risk reasons in the reader's words.

A score stores its reasons as ``{"feature": NAME, "value": V}`` (the lease's own value of a
feature of :data:`cloud.risk.features.FEATURES`); they are worded only when shown, in the
reader's language: Chinese (``zh-CN``, the default) or English (``en``). Scores stored
before reasons were structured hold English sentences: those are shown as they are.

Each feature has one number to show (e.g. a log ratio shown as a percentage change), one
format and one sentence per language; a feature without words is shown as ``NAME = value``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: A stored reason: structured, or words stored before reasons were structured.
Reason = str | Mapping[str, Any]


def _as_is(v: float) -> float:
    return v


def _change(v: float) -> float:
    """A log ratio as a percentage change (``+inf`` past what a float holds)."""
    try:
        return 100 * math.expm1(v)
    except OverflowError:
        return math.inf


def _share(v: float) -> float:
    return 100 * v


def _fall(v: float) -> float:
    return -100 * v


@dataclass(frozen=True)
class _Words:
    shown: Callable[[float], float]  # the number the sentences show
    spec: str  # its format
    en: str  # the sentences, "{}" where the number goes
    zh: str


_WORDS: dict[str, _Words] = {
    "use_ratio": _Words(
        _change, "+.0f", "use {} % vs its own 60-day baseline", "用量较自身 60 天基线 {} %"
    ),
    "peer_ratio": _Words(
        _change, "+.0f", "use trend {} % vs comparable units", "用量趋势较同类单元 {} %"
    ),
    "use_slope": _Words(
        _fall,
        ".0f",
        "use falling {} % of baseline over the last 30 days",
        "近 30 天用量下降了基线的 {} %",
    ),
    "zero_streak": _Words(
        _as_is, ".0f", "{} days in a row with almost no use", "连续 {} 天几乎没有用量"
    ),
    "late_share": _Words(
        _share, ".0f", "{} % of the last year's invoices paid late", "近一年 {} % 的账单逾期支付"
    ),
    "days_late": _Words(
        _as_is, ".1f", "invoices paid {} days late on average", "账单平均逾期 {} 天支付"
    ),
    "collections_stage": _Words(_as_is, ".0f", "collections at step {}", "催收已到第 {} 步"),
    "open_tickets": _Words(_as_is, ".0f", "{} repair ticket(s) open", "{} 个报修未关闭"),
    "recent_tickets": _Words(
        _as_is, ".0f", "{} repair ticket(s) in the last 90 days", "近 90 天报修 {} 次"
    ),
    "days_to_expiry": _Words(_as_is, ".0f", "contract ends in {} days", "合同 {} 天后到期"),
    "days_to_paid_through": _Words(
        _as_is, ".0f", "paid through {} days from now", "费用已付至 {} 天后"
    ),
    "rent_ratio": _Words(_change, "+.0f", "rent {} % vs comparable units", "租金较同类单元 {} %"),
    "tenure_years": _Words(_as_is, ".1f", "tenant for {} years", "已租住 {} 年"),
    "nps": _Words(
        _as_is, ".0f", "satisfaction survey score {} of 10", "满意度调查评分 {} 分（满分 10 分）"
    ),
    "activities": _Words(
        _as_is,
        ".0f",
        "joined {} community activities in 180 days",
        "180 天内参加社区活动 {} 次",
    ),
}


def reason_text(reason: str | Mapping[str, Any], language: str = "zh-CN") -> str:
    """One reason in ``language`` ("zh-CN" or "en"; anything else reads as "zh-CN"): a
    stored string as it is, ``{"feature", "value"}`` in that language's words."""
    if isinstance(reason, str):
        return reason
    name = str(reason.get("feature", "?"))
    value = reason.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{name} = {value}"
    words = _WORDS.get(name)
    if words is None:
        return f"{name} = {value:.3g}"
    sentence = words.en if language == "en" else words.zh
    return sentence.format(format(words.shown(float(value)), words.spec))


def reasons_text(reasons: Iterable[str | Mapping[str, Any]], language: str = "zh-CN") -> list[str]:
    """Each reason in ``language`` (see :func:`reason_text`)."""
    return [reason_text(r, language) for r in reasons]
