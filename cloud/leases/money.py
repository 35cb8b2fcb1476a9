"""Money rules of leases: integer cents, one rounding per line.

Rates (rent rises, CPI ratios, late-fee rates) are Decimals; prorations are exact fractions
(rent × days ÷ days of the month). A line keeps full precision until it is rounded, once,
to the cent with ROUND_HALF_UP (half a cent goes away from zero); an invoice's total is the
exact sum of its rounded lines.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction


def round_half_up(value: Fraction | Decimal | int) -> int:
    """``value`` [cents, exact] → whole cents, half away from zero (ROUND_HALF_UP)."""
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal):
        return int(value.to_integral_value(rounding=ROUND_HALF_UP))
    n, d = value.numerator, value.denominator
    if n >= 0:
        return (2 * n + d) // (2 * d)
    return -((-2 * n + d) // (2 * d))


def scale_cents(cents: int, rate: Decimal) -> int:
    """``cents`` × ``rate`` rounded half up [cents], e.g. a rent after a rise of
    ``rate`` = 1.035."""
    return round_half_up(Decimal(cents) * rate)
