"""The 12-month history chart of the tenant page: an inline SVG drawn on the server (no
JavaScript, no chart library), one bar per month with its amount."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

from cloud.apportion.money import cny
from cloud.statements.access import HistoryPoint

WIDTH, HEIGHT = 360, 180
_TOP, _BOTTOM, _LEFT, _RIGHT = 18, 28, 6, 6


def history_svg(points: Sequence[HistoryPoint], title: str, current: str) -> Markup:
    """Bars of the amounts [CNY] of ``points`` (oldest first); the bar of the period starting
    ``current`` (ISO date) is highlighted. ``title`` is the chart's accessible name."""
    if not points:
        return Markup("")
    top = max(max(p.cents for p in points), 1)
    slot = (WIDTH - _LEFT - _RIGHT) / len(points)
    bar = slot * 0.7
    plot = HEIGHT - _TOP - _BOTTOM
    parts = [
        f'<svg class="history" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{_LEFT}" y1="{HEIGHT - _BOTTOM}" x2="{WIDTH - _RIGHT}" '
        f'y2="{HEIGHT - _BOTTOM}" class="axis"/>',
    ]
    for i, p in enumerate(points):
        h = max(p.cents / top * plot, 1.0)
        x = _LEFT + i * slot + (slot - bar) / 2
        y = HEIGHT - _BOTTOM - h
        amount = cny(p.cents)
        css = "bar current" if p.period_start.isoformat() == current else "bar"
        parts.append(
            f'<g class="{css}"><title>{p.period_start:%Y-%m}: {amount} CNY, '
            f"{p.own_kwh} kWh</title>"
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}"/>'
            f'<text x="{x + bar / 2:.1f}" y="{HEIGHT - _BOTTOM + 12}" '
            f'class="month">{p.period_start:%m}</text>'
            f'<text x="{x + bar / 2:.1f}" y="{y - 3:.1f}" class="value">'
            f"{p.cents / 100:.0f}</text></g>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
