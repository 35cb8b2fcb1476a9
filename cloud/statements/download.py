"""A tenant's statement as a CSV file for Excel (the 下载明细 link on the statement page).

One row per line of the signed statement, in the reader's language: the item as the page
words it (component, where it comes from, time band), the time band, the first and last day
it covers, the energy [kWh], the applied unit price [CNY/kWh], the amount [CNY] and the
calculation; then a total row. Numbers are plain (no thousands separators, no unit) so that
Excel reads them as numbers; the file is UTF-8 with a BOM (:func:`cloud.apportion.exports.rows_csv`,
which also keeps a cell that starts like a formula from being run). A statement signed before
the structured form (``mf.statement/1``) gives its signed English explanation as the
calculation. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from cloud.apportion.exports import rows_csv
from cloud.statements.wording import register_name, statement_view, words

_COLUMNS = ("item", "register", "from", "to", "kwh", "price", "amount", "formula")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _last_day(end: str) -> date | None:
    """A line's stored end is exclusive; the file shows the last day it covers."""
    return date.fromisoformat(end) - timedelta(days=1) if end else None


def _number(value: Any) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def _row(line: Mapping[str, Any], item: str, register: str, formula: str) -> list[Any]:
    price = (line.get("price") or {}).get("applied")
    return [
        item,
        register,
        date.fromisoformat(line["from"]) if line.get("from") else None,
        _last_day(line.get("to", "")),
        None if line["register"] == "demand" else _number(line.get("kwh")),
        None if line["register"] == "demand" else _number(price),
        _number(line["amount_cny"]),
        formula,
    ]


def statement_csv(doc: Mapping[str, Any], lang: str) -> bytes:
    """The statement's lines and total as CSV in ``lang`` (zh-CN or en)."""
    w = words(lang)
    separator = "；" if lang == "zh-CN" else "; "
    view = statement_view(doc, lang)
    if view is not None:
        rows = [
            _row(x.source, x.title, x.register, separator.join(x.formula))
            for x in view.own + view.shared
        ]
    else:
        rows = [
            _row(x, x["component"], register_name(x["register"], lang), x.get("explanation", ""))
            for x in doc["lines"]
        ]
    rows.append(
        [w["csv_total"], None, None, None, None, None, _number(doc["total"]["amount_cny"]), ""]
    )
    return rows_csv([w[f"csv_{c}"] for c in _COLUMNS], rows)


def statement_filename(doc: Mapping[str, Any]) -> str:
    """``statement-SITE-UNIT-PERIODSTART.csv`` in safe ASCII (codes, not display names)."""
    unit = doc.get("unit") or {}
    parts = [
        doc.get("site", ""),
        unit.get("node", "") or doc.get("party", ""),
        doc["period"]["start"],
    ]
    return "statement-" + "-".join(_SAFE.sub("_", str(p))[:40] for p in parts) + ".csv"


__all__ = ["statement_csv", "statement_filename"]
