"""The charts of the tenant page, inline SVG drawn on the server (no JavaScript, no chart
library; the CSP allows neither inline script nor style): the 12-month history, one bar per
month with its amount [CNY], and the composition of this month's amount (own use, each
shared part, line loss) as labelled horizontal bars [CNY]. Each carries its unit on the axis
or the labels and a title; the page prints the same numbers in a table beside it."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

from cloud.apportion.money import cny
from cloud.statements.access import HistoryPoint

WIDTH, HEIGHT = 360, 190
_TOP, _BOTTOM, _LEFT, _RIGHT = 22, 28, 34, 6


def history_svg(
    points: Sequence[HistoryPoint], title: str, current: str, axis: str = "¥"
) -> Markup:
    """Bars of the amounts [CNY] of ``points`` (oldest first); the bar of the period starting
    ``current`` (ISO date) is highlighted. ``title`` is the chart's accessible name, ``axis``
    the label of the value axis (its unit, e.g. ``金额 (¥)``)."""
    if not points:
        return Markup("")
    top = max(max(p.cents for p in points), 1)
    slot = (WIDTH - _LEFT - _RIGHT) / len(points)
    bar = slot * 0.7
    plot = HEIGHT - _TOP - _BOTTOM
    base = HEIGHT - _BOTTOM
    parts = [
        f'<svg class="history" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<text x="2" y="12" class="axis-label">{escape(axis)}</text>',
        f'<text x="{_LEFT - 3}" y="{_TOP + 4}" class="tick" text-anchor="end">'
        f"{top / 100:.0f}</text>",
        f'<text x="{_LEFT - 3}" y="{base}" class="tick" text-anchor="end">0</text>',
        f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{base}" class="axis"/>',
        f'<line x1="{_LEFT}" y1="{base}" x2="{WIDTH - _RIGHT}" y2="{base}" class="axis"/>',
    ]
    for i, p in enumerate(points):
        h = max(p.cents / top * plot, 1.0)
        x = _LEFT + i * slot + (slot - bar) / 2
        y = base - h
        amount = cny(p.cents)
        css = "bar current" if p.period_start.isoformat() == current else "bar"
        parts.append(
            f'<g class="{css}"><title>{p.period_start:%Y-%m}: ¥{amount}, '
            f"{p.own_kwh} kWh</title>"
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}"/>'
            f'<text x="{x + bar / 2:.1f}" y="{base + 12}" '
            f'class="month">{p.period_start:%m}</text>'
            f'<text x="{x + bar / 2:.1f}" y="{y - 3:.1f}" class="value">'
            f"{p.cents / 100:.0f}</text></g>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


_ROW, _LABEL = 26, 150


def composition_svg(parts: Sequence[tuple[str, int]], title: str, unit: str = "¥") -> Markup:
    """Horizontal bars of the parts of one statement's amount: ``parts`` are (label,
    cents), the bars scaled to the largest; each is labelled with its amount in ``unit``
    (¥) and its share of the total. ``title`` is the accessible name."""
    shown = [(label, cents) for label, cents in parts if cents > 0]
    total = sum(c for _, c in shown)
    return bars_svg(
        [
            (
                label,
                cents,
                f"¥{cny(cents)} · {cents / total * 100:.1f}%",
                f"{label}: ¥{cny(cents)} ({cents / total * 100:.1f}%)",
            )
            for label, cents in shown
        ],
        title,
        unit,
        css="composition",
    )


def bars_svg(
    bars: Sequence[tuple[str, float, str, str]],
    title: str,
    unit: str,
    *,
    css: str = "bars",
    top: float | None = None,
    span: int = WIDTH - _LABEL - 110,
) -> Markup:
    """Labelled horizontal bars: ``bars`` are (label, value, the value's text, its
    tooltip), scaled to ``top`` (default: the largest value); ``unit`` labels the value axis
    (``¥``, ``%``, ``张``), ``title`` is the accessible name. Bars of value 0 are drawn 1 px
    wide so that every label keeps its row; ``span`` is the longest bar's length [px].
    Nothing when there are no bars."""
    if not bars:
        return Markup("")
    top = top or max((v for _, v, _, _ in bars), default=0) or 1
    height = _ROW * len(bars) + 22
    out = [
        f'<svg class="{css}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<text x="{_LABEL}" y="12" class="axis-label">{escape(unit)}</text>',
    ]
    for i, (label, value, text, tip) in enumerate(bars):
        y = 20 + i * _ROW
        w = max(value / top * span, 1.0)
        out.append(
            f'<g class="part part-{i % 6}"><title>{escape(tip)}</title>'
            f'<text x="{_LABEL - 4}" y="{y + 14}" class="label" text-anchor="end">'
            f"{escape(label[:22])}</text>"
            f'<rect x="{_LABEL}" y="{y + 3}" width="{w:.1f}" height="{_ROW - 8}"/>'
            f'<text x="{_LABEL + w + 4:.1f}" y="{y + 14}" class="value">{escape(text)}</text></g>'
        )
    out.append("</svg>")
    return Markup("".join(out))


def funnel_svg(steps: Sequence[tuple[str, int]], title: str, unit: str) -> Markup:
    """Horizontal bars of counts, one per step of a funnel in order (``steps`` are (label,
    count)), scaled to the largest; each labelled with its count; ``unit`` (e.g. 份,
    offers) names what is counted. ``title`` is the accessible name. A step of none keeps
    its row."""
    if not steps:
        return Markup("")
    bars = [(label, n, str(n), f"{label}: {n} {unit}") for label, n in steps]
    return bars_svg(bars, title, unit, css="funnel", span=WIDTH - _LABEL - 70)
