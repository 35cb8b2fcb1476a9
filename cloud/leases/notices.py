"""What the lease jobs write for people, in the reader's language (decision 0040).

Notices — a payment reminder, a deposit settlement and a deposit refund paid to a tenant; a
collections escalation or legal hand-over, a renewal reminder, a move-out-risk reminder, an
unacknowledged-reminder escalation and a deposit step past its SLA to staff — are worded in
their recipient's stored language (``tenants.language``, ``staff.language``; Chinese by
default) when the job queues them: :func:`notice` gives (subject, body). Task notes are
stored as a code and its values (``lease_tasks.note_code`` / ``note_params``) with their
English text beside them (:func:`task_note`), and a page words them in its reader's
language with :func:`note_text`.

A renewal review's reasons (a tenant's late payments, open repair complaints, move-out risk)
are kept as ``{"code": …, …}`` and worded by :func:`review_reasons`; the move-out model's own
reasons are worded by :func:`cloud.risk.wording.reason_text`. Amounts are yuan with two
decimals (``1234.56``) in both languages; days are ISO dates.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from cloud.apportion.money import cny
from cloud.risk.wording import reason_text
from cloud.wording import pick_language, word

#: (subject, body) per notice code and language; the values each names are in :func:`notice`'s
#: callers (one per job).
NOTICES: dict[str, dict[str, tuple[str, str]]] = {
    "payment_reminder": {
        "zh-CN": (
            "缴费提醒：账单 {invoice}",
            "{name}，您好：账单 {invoice} 尚有 {owed} 元未付，已于 {due_on} 到期。"
            "请尽快缴纳；如已缴纳，请忽略本通知。",
        ),
        "en": (
            "Payment reminder: {invoice}",
            "Dear {name}, {owed} CNY of invoice {invoice} was due on {due_on}. Please pay "
            "at your earliest convenience.",
        ),
    },
    "legal_handover": {
        "zh-CN": ("已移交法务：账单 {invoice} 逾期 {days} 天未付", "已移交法务：{what}。"),
        "en": ("Handed to legal: {invoice} unpaid {days} days", "Handed over to legal: {what}."),
    },
    "escalation": {
        "zh-CN": (
            "催收升级：账单 {invoice} 逾期 {days} 天未付",
            "已升级给您处理：{what}。请考虑法律途径。",
        ),
        "en": (
            "Escalation: {invoice} unpaid {days} days",
            "Escalated to you: {what}. Consider legal steps.",
        ),
    },
    "renewal_reminder": {
        "zh-CN": (
            "租约 {lease} 将于 {end_on} 到期",
            "租户 {tenant} 的租约 {lease}（单元 {unit}）将于 {end_on} 到期（还有 {days} 天）。"
            "请准备续签，并确认本提醒。",
        ),
        "en": (
            "Lease {lease} ends on {end_on}",
            "Lease {lease} of {tenant} for unit {unit} ends on {end_on} ({days} days). "
            "Please prepare the renewal and acknowledge this reminder.",
        ),
    },
    "renewal_reminder_priority": {
        "zh-CN": (
            "【优先】租约 {lease} 将于 {end_on} 到期",
            "租户 {tenant} 的租约 {lease}（单元 {unit}）将于 {end_on} 到期（还有 {days} 天）。"
            "请准备续签，并确认本提醒。优先复核：{reasons}。",
        ),
        "en": (
            "[priority] Lease {lease} ends on {end_on}",
            "Lease {lease} of {tenant} for unit {unit} ends on {end_on} ({days} days). "
            "Please prepare the renewal and acknowledge this reminder. "
            "PRIORITY REVIEW: {reasons}.",
        ),
    },
    "renewal_risk": {
        "zh-CN": (
            "【退租风险】租约 {lease} 将于 {end_on} 到期",
            "租户 {tenant} 的租约 {lease}（单元 {unit}）将于 {end_on} 到期（还有 {days} 天），"
            "退租风险高：{reasons}。由 {manager} 负责，请现在安排挽留。",
        ),
        "en": (
            "[move-out risk] Lease {lease} ends on {end_on}",
            "Lease {lease} of {tenant} for unit {unit} ends on {end_on} ({days} days) and is at "
            "high risk of moving out: {reasons}. {manager} manages it; please plan the "
            "retention now.",
        ),
    },
    "renewal_escalation": {
        "zh-CN": (
            "升级：租约 {lease} 的续签提醒未确认",
            "{manager} 尚未确认租约 {lease}（单元 {unit}，{end_on} 到期）到期前 {offset} 天的"
            "续签提醒（{sent_on} 发出）。",
        ),
        "en": (
            "Escalation: renewal of lease {lease} not acknowledged",
            "{manager} has not acknowledged the {offset}-day renewal reminder of lease "
            "{lease} (unit {unit}, ends {end_on}) sent on {sent_on}.",
        ),
    },
    "deposit_sla": {
        "zh-CN": ("押金退还超时：{lease}", "{what}"),
        "en": ("Deposit refund overdue: {lease}", "{what}"),
    },
    "deposit_settled": {
        "zh-CN": (
            "押金结算：租约 {lease}",
            "{name}，您好：租约 {lease}（单元 {unit}）的押金 {deposit} 元已结算。"
            "扣款：{deductions}。{result}",
        ),
        "en": (
            "Deposit settled: lease {lease}",
            "Dear {name}, the deposit of {deposit} CNY of lease {lease} (unit {unit}) is "
            "settled. Deductions: {deductions}. {result}",
        ),
    },
    "deposit_paid": {
        "zh-CN": (
            "押金已退还：租约 {lease}",
            "{name}，您好：租约 {lease} 的押金退款 {refund} 元已付出，转账流水号 {reference}。",
        ),
        "en": (
            "Deposit refunded: lease {lease}",
            "Dear {name}, the deposit refund of {refund} CNY of lease {lease} is paid, "
            "bank transfer no. {reference}.",
        ),
    },
}

#: the parts of a deposit settlement notice: one deduction, none, the refund or shortfall
DEPOSIT_WORDS: dict[str, dict[str, str]] = {
    "deduction": {"zh-CN": "{reason} {amount} 元", "en": "{reason} {amount} CNY"},
    "no_deduction": {"zh-CN": "无", "en": "none"},
    "arrears": {
        "zh-CN": "其中 {arrears} 元已用于结清未付账单。",
        "en": "{arrears} CNY of it paid your unpaid invoices.",
    },
    "refund": {"zh-CN": "退还 {refund} 元。", "en": "{refund} CNY will be refunded."},
    "shortfall": {
        "zh-CN": "扣款超出押金 {shortfall} 元，不退还押金，差额仍需补缴。",
        "en": "The deductions exceed the deposit by {shortfall} CNY: nothing is refunded "
        "and the difference is still owed.",
    },
}

#: a task's note per code and language (the values each names: the job that opens it)
TASK_NOTES: dict[str, dict[str, str]] = {
    "owed": {
        "zh-CN": "账单 {invoice}（{unit}，{tenant}）欠款 {owed} 元，{due_on} 到期",
        "en": "invoice {invoice} ({unit}, {tenant}): {owed} CNY owed, due {due_on}",
    },
    "deposit_sla": {
        "zh-CN": "租约 {lease} 的押金退还 {refund}：{step}已等待 {hours} 小时，时限为 {sla} 小时",
        "en": "deposit refund {refund} of lease {lease}: {step} has waited {hours} h, "
        "the SLA is {sla} h",
    },
    "renewal_review": {"zh-CN": "续签前复核：{reasons}", "en": "{reasons}"},
}

#: a deposit refund's steps (cloud.leases.deposits) in words: the one copy (the web pages'
#: ``deposit_step_*`` words are these, cloud.web.rendering.translations)
DEPOSIT_STEPS: dict[str, dict[str, str]] = {
    "inspection": {"zh-CN": "验房", "en": "inspection"},
    "settlement": {"zh-CN": "结算", "en": "settlement"},
    "approval": {"zh-CN": "审批", "en": "approval"},
    "payment": {"zh-CN": "付款", "en": "payment"},
}

#: a renewal review's reasons (see :func:`review_reasons`)
REVIEW_REASONS: dict[str, dict[str, str]] = {
    "late_payments": {
        "zh-CN": "近 365 天逾期付款 {count} 次",
        "en": "{count} late payment(s) in the last 365 days",
    },
    "open_complaints": {"zh-CN": "有未解决的报修投诉", "en": "open repair complaint(s)"},
    "move_out_risk": {"zh-CN": "退租风险 {percent}%{why}", "en": "move-out risk {percent}%{why}"},
}

_SEPARATOR = {"zh-CN": "；", "en": "; "}


def _owed(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with ``owed_cents`` written as ``owed`` (yuan)."""
    out = dict(params)
    if "owed_cents" in out:
        out["owed"] = cny(int(out.pop("owed_cents")))
    return out


def review_reasons(reasons: Iterable[str | Mapping[str, Any]], language: str) -> str:
    """A renewal review's reasons as one text in ``language`` (a reason stored as text — a
    task opened before revision 0027 — as it is)."""
    lang = pick_language(language)
    out = []
    for reason in reasons:
        if isinstance(reason, str):
            out.append(reason)
            continue
        params = dict(reason)
        if reason.get("code") == "move_out_risk":
            why = [reason_text(r, lang) for r in reason.get("why", ())]
            params["percent"] = round(100 * float(reason.get("probability", 0)))
            joined = _SEPARATOR[lang].join(why)
            params["why"] = (
                ("（" + joined + "）" if lang == "zh-CN" else f" ({joined})") if why else ""
            )
        text = word(REVIEW_REASONS, str(reason.get("code", "")), lang, params)
        out.append(text if text is not None else str(reason.get("code", "")))
    return _SEPARATOR[lang].join(out)


def _deposit(params: dict[str, Any], language: str) -> dict[str, Any]:
    """A deposit notice's values: cents as yuan, the deductions (``[{"reason", "cents"}]``)
    as one text, the refund or shortfall (and what paid unpaid invoices) as a sentence."""
    for name in ("deposit", "refund", "shortfall", "arrears"):
        if f"{name}_cents" in params:
            params[name] = cny(int(params.pop(f"{name}_cents") or 0))
    if isinstance(params.get("deductions"), list):
        parts = [
            word(
                DEPOSIT_WORDS,
                "deduction",
                language,
                {"reason": d.get("reason", ""), "amount": cny(int(d.get("cents", 0)))},
            )
            for d in params["deductions"]
            if isinstance(d, Mapping)
        ]
        params["deductions"] = _SEPARATOR[language].join(p for p in parts if p) or word(
            DEPOSIT_WORDS, "no_deduction", language, {}
        )
    if "shortfall" in params and "refund" in params:
        short = params["shortfall"] != cny(0)
        result = word(DEPOSIT_WORDS, "shortfall" if short else "refund", language, params) or ""
        if params.get("arrears", cny(0)) != cny(0):
            result = (word(DEPOSIT_WORDS, "arrears", language, params) or "") + result
        params["result"] = result
    return params


def _filled(params: Mapping[str, Any], language: str) -> dict[str, Any]:
    """The values a note's or notice's words name, written for ``language``."""
    out = _deposit(_owed(params), language)
    if "step" in out:
        out["step"] = DEPOSIT_STEPS.get(str(out["step"]), {}).get(language, out["step"])
    if "reasons" in out and not isinstance(out["reasons"], str):
        out["reasons"] = review_reasons(out["reasons"], language)
    return out


def notice(code: str, language: str, params: Mapping[str, Any]) -> tuple[str, str]:
    """A notice's (subject, body) in ``language`` (Chinese unless ``en``); ``params`` are
    JSON values (``owed_cents`` is written in yuan, ``reasons`` — a list — worded)."""
    lang = pick_language(language)
    words = NOTICES[code].get(lang) or NOTICES[code]["en"]
    filled = _filled(params, lang)
    return words[0].format(**filled), words[1].format(**filled)


def task_note(code: str, params: Mapping[str, Any]) -> tuple[str, str, str]:
    """A task note as stored: (its English text, the code, the values as JSON)."""
    english = note_text(code, json.dumps(dict(params), sort_keys=True), "en", fallback="")
    if not english:
        raise KeyError(f"task note {code!r}: no words for it or its values {sorted(params)}")
    return english, code, json.dumps(dict(params), ensure_ascii=False, sort_keys=True)


def note_text(code: str, params_json: str, language: str, *, fallback: str) -> str:
    """A stored task note in ``language``: worded from its code and values, else
    ``fallback`` (its stored English text: a task opened before revision 0027)."""
    if not code:
        return fallback
    try:
        params = json.loads(params_json or "{}")
    except ValueError:
        return fallback
    if not isinstance(params, dict):
        return fallback
    lang = pick_language(language)
    try:
        text = word(TASK_NOTES, code, lang, _filled(params, lang))
    except (TypeError, ValueError, AttributeError):  # values not of the kinds the words take
        return fallback
    return fallback if text is None else text
