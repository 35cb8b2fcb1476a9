"""A signed statement in its reader's language: the words of every line, reading and total,
rendered at view time from the structured statement (``mf.statement/2``, decision 0021).

:func:`statement_view` turns a verified statement document into what a page shows, in
Chinese (``zh-CN``, the default) or English (``en``): display names (the code only where the
site gives no name), 尖/峰/平/谷 for the TOU registers, the multiplier labelled and each
meter's use written out ((本期 − 上期) × 倍率 = 用量), every shared line's formula with its
numbers, the applied unit price (and the catalogue price with the ratio when they differ),
own-use and shared subtotals, the share of the site's bill, and the parts of the
composition chart. A statement signed before (``mf.statement/1``) keeps its signed English
sentences: they are shown as they are.

Pure functions, no I/O. Energies [kWh], areas [m²], amounts [CNY, yuan]; numbers are written
with thousands separators (``1,234.00``), which both languages use; register readings with
two decimals whatever their stored form (``2`` and ``2.0`` are both ``2.00``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

SCHEMA_V2 = "mf.statement/2"

_WORDS: dict[str, dict[str, str]] = {
    "zh-CN": {
        "own_use": "本户用电",
        "landlord_load": "业主自用",
        "common": "公区分摊",
        "loss": "线损分摊",
        "excess_loss": "超限线损",
        "formula_remainder": "公式未分摊部分",
        "unallocated": "未分配",
        "demand": "需量电费分摊",
        "reg_total": "总",
        "reg_T1": "尖",
        "reg_T2": "峰",
        "reg_T3": "平",
        "reg_T4": "谷",
        "reg_demand": "需量",
        "origin_common": "公区表用量",
        "origin_loss": "租户承担线损",
        "origin_formula": "公式电量",
        "origin_demand": "需量电费",
        "w_area": "本户面积·天",
        "wt_area": "参与面积·天",
        "w_usage": "本户用量",
        "wt_usage": "参与用量",
        "w_per_unit": "本户天数",
        "wt_per_unit": "参与户·天",
        "w_coefficient": "本户系数·天",
        "wt_coefficient": "参与系数·天",
        "w_blend": "本户混合权重",
        "wt_blend": "权重合计",
        "w_formula": "本户面积权重",
        "wt_formula": "参与面积权重",
        "w_exclusive": "本户独用",
        "wt_exclusive": "独用合计",
        "u_m2_day": "m²·天",
        "u_kwh": "kWh",
        "u_unit_day": "户·天",
        "u_coef_day": "系数·天",
        "u_share": "",
        "u_m2_kwh": "m²·kWh",
        "day": "天",
        "area_days": "本户面积·天 = {area} m² × {days} 天 = {weight} m²·天",
        "coef_days": "本户系数·天 = {coef} × {days} 天 = {weight}",
        "loss_head": (
            "线损 = {node} 用量 − 下级表计之和 = {residual} kWh，"
            "线损率 λ = {residual} ÷ {node_kwh} kWh = {rate}"
        ),
        "blend_note": "混合权重 = {p} × 用量占比 + {q} × 面积·天占比",
        "formula_head": (
            "公式电量 = Σ 每日差额 × clip(({driver} − {base}) ÷ {span}, 0, 1) "
            "= {passed} kWh（共 {total} kWh）"
        ),
        "excess": (
            "线损率 λ = {rate} 超过上限 {cap}：超出的 {kwh} kWh 由业主承担"
            "（{node} 用量 {node_kwh} kWh）"
        ),
        "remainder": "公式未转嫁的 {kwh} kWh（凉爽日）由业主承担",
        "unallocated_text": "无分摊权重：¥{cny} 由业主承担",
        "money": "{kwh} kWh × 单价 {price} 元/kWh = ¥{amount}",
        "money_demand": "需量电费分摊 = ¥{amount}",
        "catalogue": (
            "目录电价 {price} 元/kWh，本期按电费单执行 {applied} 元/kWh（{ratio} × 目录价）"
        ),
        "tiers": "阶梯电价：{tiers}",
        "tier": "≤{upto} kWh {price} 元",
        "tier_rest": "其余 {price} 元",
        "usage": "(本期 − 上期) × 倍率 = 用量：({end} − {start}) × {mult} = {kwh} kWh",
        "usage_plain": "用量 {kwh} kWh",
        "estimated": "其中 {kwh} kWh 为估算值（{why}）",
        "why_history": "缺少读数的天数按本表历史用量估算",
        "why_comparable_units": "缺少读数的天数按同类单元用量估算",
        "why_building_average": "缺少读数的天数按楼栋平均用量估算",
        "why_": "缺少读数的天数已估算",
        "src_read": "实抄",
        "src_interpolated": "插值",
        "src_estimated": "估算",
        "loss_part": "线损",
        "own_part": "本户用电",
        "landlord": "业主",
        "csv_item": "项目",
        "csv_register": "时段",
        "csv_from": "起始日",
        "csv_to": "截止日",
        "csv_kwh": "电量（kWh）",
        "csv_price": "单价（元/kWh）",
        "csv_amount": "金额（元）",
        "csv_formula": "计算",
        "csv_total": "合计",
    },
    "en": {
        "own_use": "Own use",
        "landlord_load": "Landlord's own use",
        "common": "Common area share",
        "loss": "Line loss share",
        "excess_loss": "Loss above the cap",
        "formula_remainder": "Not passed on by the formula",
        "unallocated": "Unallocated",
        "demand": "Demand charge share",
        "reg_total": "total",
        "reg_T1": "critical peak",
        "reg_T2": "peak",
        "reg_T3": "flat",
        "reg_T4": "valley",
        "reg_demand": "demand",
        "origin_common": "common meter use",
        "origin_loss": "loss carried by tenants",
        "origin_formula": "formula energy",
        "origin_demand": "demand charge",
        "w_area": "your area × days",
        "wt_area": "participating area × days",
        "w_usage": "your use",
        "wt_usage": "participants' use",
        "w_per_unit": "your days",
        "wt_per_unit": "participants' unit-days",
        "w_coefficient": "your coefficient × days",
        "wt_coefficient": "participants' coefficient × days",
        "w_blend": "your blended weight",
        "wt_blend": "total weight",
        "w_formula": "your area weight",
        "wt_formula": "participants' area weight",
        "w_exclusive": "your exclusive use",
        "wt_exclusive": "exclusive total",
        "u_m2_day": "m²·d",
        "u_kwh": "kWh",
        "u_unit_day": "unit·d",
        "u_coef_day": "coef·d",
        "u_share": "",
        "u_m2_kwh": "m²·kWh",
        "day": "d",
        "area_days": "your area × days = {area} m² × {days} d = {weight} m²·d",
        "coef_days": "your coefficient × days = {coef} × {days} d = {weight}",
        "loss_head": (
            "loss = {node} meter use − Σ meters below it = {residual} kWh, "
            "loss rate λ = {residual} ÷ {node_kwh} kWh = {rate}"
        ),
        "blend_note": "blended weight = {p} × usage share + {q} × area-days share",
        "formula_head": (
            "formula energy = Σ daily difference × clip(({driver} − {base}) ÷ {span}, 0, 1) "
            "= {passed} kWh (of {total} kWh)"
        ),
        "excess": (
            "loss rate λ = {rate} is above the cap {cap}: the {kwh} kWh above it are the "
            "landlord's ({node} meter {node_kwh} kWh)"
        ),
        "remainder": "{kwh} kWh not passed on by the formula (cool days) stay with the landlord",
        "unallocated_text": "no key weight: ¥{cny} stays with the landlord",
        "money": "{kwh} kWh × unit price {price} CNY/kWh = ¥{amount}",
        "money_demand": "demand charge share = ¥{amount}",
        "catalogue": (
            "catalogue price {price} CNY/kWh; this period's bill gives {applied} CNY/kWh "
            "({ratio} × catalogue)"
        ),
        "tiers": "tiered price: {tiers}",
        "tier": "≤{upto} kWh {price} CNY",
        "tier_rest": "rest {price} CNY",
        "usage": "(current − previous) × multiplier = use: ({end} − {start}) × {mult} = {kwh} kWh",
        "usage_plain": "use {kwh} kWh",
        "estimated": "of which {kwh} kWh estimated ({why})",
        "why_history": "days without readings estimated from this meter's history",
        "why_comparable_units": "days without readings estimated from comparable units",
        "why_building_average": "days without readings estimated from the building average",
        "why_": "days without readings estimated",
        "src_read": "read",
        "src_interpolated": "interpolated",
        "src_estimated": "estimated",
        "loss_part": "Line loss",
        "own_part": "Own use",
        "landlord": "landlord",
        "csv_item": "Item",
        "csv_register": "Time band",
        "csv_from": "From",
        "csv_to": "To (last day)",
        "csv_kwh": "Energy (kWh)",
        "csv_price": "Unit price (CNY/kWh)",
        "csv_amount": "Amount (CNY)",
        "csv_formula": "Calculation",
        "csv_total": "Total",
    },
}


def words(lang: str) -> Mapping[str, str]:
    """The words of ``lang`` (Chinese for any other code)."""
    return _WORDS.get(lang, _WORDS["zh-CN"])


def group(value: str | Decimal | float | int, places: int | None = None) -> str:
    """A number with thousands separators, keeping its decimals (``1234.5`` → ``1,234.5``;
    with ``places``, rounded to them). Text that is not a number is returned as it is."""
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    if places is not None:
        return f"{d:,.{places}f}"
    exponent = d.as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return f"{d:,.{decimals}f}"


def percent(ratio: str | float | Decimal | None, places: int = 2) -> str:
    """A ratio as a percentage (``0.0714`` → ``7.14%``); ``—`` when unknown."""
    if ratio is None:
        return "—"
    return f"{Decimal(str(ratio)) * 100:.{places}f}%"


def register_name(register: str, lang: str) -> str:
    """尖/峰/平/谷 for T1–T4 (critical peak/peak/flat/valley), 总 for ``total``; a register
    without a known name keeps its code."""
    return words(lang).get(f"reg_{register}", register)


def _name(names: Mapping[str, str], code: str) -> str:
    return names.get(code) or code


@dataclass
class LineView:
    """One line as shown: title, the formula lines, the money line, price notes."""

    component: str
    title: str
    register: str
    kwh: str
    cents: int
    amount: str
    formula: list[str] = field(default_factory=list)
    money: str = ""
    price: str = ""
    price_note: str = ""
    start: str = ""
    end: str = ""
    #: the statement's line it words (its plain numbers, for the CSV download)
    source: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class MeterView:
    """A meter as shown: name, multiplier, the readings at the stay's ends and the use."""

    meter: str
    name: str
    multiplier: str
    start: dict[str, Any] | None
    end: dict[str, Any] | None
    registers: list[dict[str, str]]


@dataclass
class StatementView:
    """What the tenant page shows of a statement, in one language."""

    version: int
    site: str
    unit: str
    party: str
    meters: list[MeterView]
    own: list[LineView]
    shared: list[LineView]
    nodes: list[dict[str, str]]
    own_cents: int
    shared_cents: int
    total_cents: int
    bill_cents: int | None
    share: str
    composition: list[tuple[str, int]]


def _node_names(doc: Mapping[str, Any]) -> dict[str, str]:
    out = {n["node"]: n.get("name", "") for n in doc.get("nodes", [])}
    for x in doc.get("lines", []):
        if x.get("origin_name"):
            out[x["origin"]] = x["origin_name"]
    return {k: v for k, v in out.items() if v}


def line_formula(line: Mapping[str, Any], lang: str, nodes: Mapping[str, str]) -> list[str]:
    """The formula of a v2 line, written out with its numbers (one or more lines of text)."""
    w = words(lang)
    calc = line.get("calc") or {}
    kind = calc.get("kind")
    origin = _name(nodes, line.get("origin", ""))
    title = w.get(line["component"], line["component"])
    if kind == "own":
        return []
    if kind == "excess_loss":
        return [
            w["excess"].format(
                rate=percent(calc["loss_rate"]),
                cap=percent(calc["loss_cap"]),
                kwh=group(calc["kwh"]),
                node=origin,
                node_kwh=group(calc["node_kwh"]),
            )
        ]
    if kind == "formula_remainder":
        return [w["remainder"].format(kwh=group(calc["kwh"]))]
    if kind == "unallocated":
        return [w["unallocated_text"].format(cny=group(calc["cny"], 2))]
    if kind not in ("key", "demand"):
        return []
    basis = calc["basis"]
    unit = w.get(f"u_{calc.get('weight_unit', '')}", "")
    out: list[str] = []
    source = "origin_common"
    if line["component"] == "loss":
        loss = calc.get("loss", {})
        out.append(
            w["loss_head"].format(
                node=origin,
                residual=group(loss.get("residual_kwh", "0")),
                node_kwh=group(loss.get("node_kwh", "0")),
                rate=percent(loss.get("loss_rate")),
            )
        )
        source = "origin_loss"
    if "formula" in calc:
        f = calc["formula"]
        out.append(
            w["formula_head"].format(
                driver=f["driver"],
                base=f["base"],
                span=f["span"],
                passed=group(f["passed_kwh"]),
                total=group(f["node_kwh"]),
            )
        )
        source = "origin_formula"
    if "p" in calc:
        p = Decimal(calc["p"])
        out.append(w["blend_note"].format(p=percent(p, 0), q=percent(1 - p, 0)))
    if "area_m2" in calc and "days" in calc:
        out.append(
            w["area_days"].format(
                area=group(calc["area_m2"], 2), days=calc["days"], weight=group(calc["weight"])
            )
        )
    if "coefficient" in calc and "days" in calc:
        out.append(
            w["coef_days"].format(
                coef=calc["coefficient"], days=calc["days"], weight=group(calc["weight"])
            )
        )
    sep = " " if unit else ""
    if kind == "demand":
        quantity = f"¥{group(calc['demand_cny'], 2)}"
        result = f"¥{group(calc['cny'], 2)}"
        source = "origin_demand"
    else:
        quantity = f"{group(calc['origin_kwh'])} kWh"
        result = f"{group(calc['kwh'])} kWh"
    out.append(
        f"{title} = {w[source]} × {w['w_' + basis]} ÷ {w['wt_' + basis]} = "
        f"{quantity} × {group(calc['weight'])}{sep}{unit} ÷ "
        f"{group(calc['weight_total'])}{sep}{unit} = {result}"
    )
    return out


def _price_texts(line: Mapping[str, Any], lang: str) -> tuple[str, str]:
    """The applied unit price [CNY/kWh] and, when the bill's price differs from the
    catalogue's, a note with both and their ratio (or the tiers of a tiered tariff)."""
    w = words(lang)
    price = line.get("price") or {}
    applied = price.get("applied")
    catalogue = price.get("catalogue") or {}
    note = ""
    if catalogue.get("kind") == "tiered":
        tiers = "; ".join(
            w["tier"].format(upto=group(t["upto"]), price=t["price"])
            if t.get("upto") is not None
            else w["tier_rest"].format(price=t["price"])
            for t in catalogue.get("tiers", [])
        )
        note = w["tiers"].format(tiers=tiers)
    elif price.get("ratio") is not None:
        note = w["catalogue"].format(
            price=catalogue.get("price"), applied=applied, ratio=price["ratio"]
        )
    return (applied or ""), note


def _line_view(
    line: Mapping[str, Any], lang: str, nodes: Mapping[str, str], registers: int
) -> LineView:
    w = words(lang)
    component = line["component"]
    parts = [w.get(component, component)]
    if line.get("origin"):
        parts.append(_name(nodes, line["origin"]))
    if registers > 1 or line["register"] not in ("total",):
        parts.append(register_name(line["register"], lang))
    applied, note = _price_texts(line, lang)
    if line["register"] == "demand" or not applied:
        money = w["money_demand"].format(amount=group(line["amount_cny"], 2))
    else:
        money = w["money"].format(
            kwh=group(line["kwh"]), price=applied, amount=group(line["amount_cny"], 2)
        )
    return LineView(
        component=component,
        title=" · ".join(parts),
        register=register_name(line["register"], lang),
        kwh=group(line["kwh"]),
        cents=int(line["cents"]),
        amount=group(line["amount_cny"], 2),
        formula=line_formula(line, lang, nodes),
        money=money,
        price=applied,
        price_note=note,
        start=line.get("from", ""),
        end=line.get("to", ""),
        source=line,
    )


def _meter_view(meter: Mapping[str, Any], lang: str) -> MeterView:
    w = words(lang)
    start, end = meter.get("start"), meter.get("end")
    rows = []
    for reg, measured in meter.get("measured_kwh", {}).items():
        estimated = Decimal(meter.get("estimated_kwh", {}).get(reg, "0"))
        use = Decimal(measured) + estimated
        a = (start or {}).get("values", {}).get(reg)
        b = (end or {}).get("values", {}).get(reg)
        mult = meter.get("multiplier", "1")
        if a is not None and b is not None:
            usage = w["usage"].format(
                end=group(b, 2), start=group(a, 2), mult=group(mult), kwh=group(f"{use:.3f}")
            )
        else:
            usage = w["usage_plain"].format(kwh=group(f"{use:.3f}"))
        why = w.get(f"why_{meter.get('estimation', {}).get(reg, '')}", w["why_"])
        rows.append(
            {
                "register": register_name(reg, lang),
                "start": group(a, 2) if a is not None else "—",
                "end": group(b, 2) if b is not None else "—",
                "usage": usage,
                "estimated": w["estimated"].format(kwh=group(f"{estimated:.3f}"), why=why)
                if estimated
                else "",
            }
        )
    marked = []
    for r in (start, end):
        marked.append(None if r is None else {**r, "source_text": w[f"src_{r['source']}"]})
    return MeterView(
        meter=meter["meter"],
        name=meter.get("name") or meter["meter"],
        multiplier=group(meter.get("multiplier", "1")),
        start=marked[0],
        end=marked[1],
        registers=rows,
    )


def statement_view(doc: Mapping[str, Any], lang: str) -> StatementView | None:
    """The view of a v2 statement in ``lang``; None for a v1 statement (shown as signed)."""
    if doc.get("schema") != SCHEMA_V2:
        return None
    w = words(lang)
    nodes = _node_names(doc)
    registers = len({x["register"] for x in doc["lines"] if x["register"] != "demand"})
    views = [_line_view(x, lang, nodes, registers) for x in doc["lines"]]
    own = [v for v in views if v.component in ("own_use", "landlord_load")]
    shared = [v for v in views if v.component not in ("own_use", "landlord_load")]
    own_cents = sum(v.cents for v in own)
    shared_cents = sum(v.cents for v in shared)
    composition: dict[str, int] = {}
    if own_cents:
        composition[w["own_part"]] = own_cents
    for v in shared:
        loss = v.component == "loss"
        label = w["loss_part"] if loss else " · ".join(v.title.split(" · ")[:2])
        composition[label] = composition.get(label, 0) + v.cents
    unit = doc.get("unit") or {}
    bill = doc.get("bill", {}).get("cents")
    return StatementView(
        version=2,
        site=doc.get("site_name") or doc["site"],
        unit=unit.get("name") or unit.get("id", w["landlord"]),
        party=doc.get("party_name") or doc["party"],
        meters=[_meter_view(m, lang) for m in doc.get("meters", [])],
        own=own,
        shared=shared,
        nodes=[
            {
                **n,
                "display": n.get("name") or n["node"],
                "rate": percent(n["loss_rate"]),
                "cap": percent(n["loss_cap"]) if n.get("loss_cap") else "—",
            }
            for n in doc.get("nodes", [])
        ],
        own_cents=own_cents,
        shared_cents=shared_cents,
        total_cents=int(doc["total"]["cents"]),
        bill_cents=bill,
        share=percent(doc.get("share_of_bill")),
        composition=list(composition.items()),
    )
