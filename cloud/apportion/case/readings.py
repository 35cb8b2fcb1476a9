"""A case's readings: each meter's register values at local midnights, checked in one pass.

A month of daily readings of a site of 10,000 units is 310,000 readings. As pydantic records
they took 6-20 µs each to validate, most of a large close; here each is a small frozen
record checked by :func:`parse_readings` with the same rules and the same error texts
(``readings.U1.2026-04-15.total: Input should be greater than or equal to 0, got -1``):
register values finite decimals in [0, :data:`MAX_MAGNITUDE`), a quality of at most 16
characters, ``method`` none or ``interpolated``, meter ids as everywhere in a case, days a
date or an instant (whether an instant is at local midnight is the case's own check).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from cloud.apportion.errors import CaseError

#: Largest magnitude of any number in a case (kWh, m², CNY, multipliers ...): 10^15. Larger
#: ones are typos or attacks, and would overflow the engine's int64 cents.
MAX_MAGNITUDE = Decimal(10) ** 15
#: Key standing for "the one register" in a shorthand given with several registers.
SINGLE = "__single__"
#: Longest quality text [characters].
MAX_QUALITY = 16
INTERPOLATED = "interpolated"
_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
_ZERO = Decimal(0)
_MAX_SHOWN = 120


class MeterReading(NamedTuple):
    """Register values [register unit] at one local midnight, with the reading's quality;
    ``method`` ``interpolated`` marks a value the close interpolated between the points
    around it. A named tuple: built in a third of a frozen dataclass's time."""

    values: Mapping[str, Decimal]
    quality: str = "good"
    method: str | None = None


class Readings(dict[str, dict[date | datetime, MeterReading]]):
    """Checked readings: meter id → day (a date, or an instant at local midnight) →
    :class:`MeterReading` (what :func:`parse_readings` returns)."""


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


class _Refused(Exception):
    """A reading refused: where below the reading (``total``, ``quality``), what, the value."""

    def __init__(self, where: str, message: str, value: Any = None) -> None:
        super().__init__(where, message, value)
        self.where, self.message, self.value = where, message, value


def _error(where: str, message: str, value: Any = None) -> CaseError:
    shown = "" if value is None or isinstance(value, Mapping | list) else f", got {_shown(value)}"
    return CaseError(f"readings.{where}: {message}{shown}")


def _number(value: Any, where: str) -> Decimal:
    kind = type(value)
    if kind is Decimal:
        number = value
    elif kind is int:
        number = Decimal(value)
    elif kind is float:
        number = Decimal(str(value))
    elif kind is str:
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise _Refused(where, "Input should be a valid decimal", value) from None
    else:
        raise _Refused(
            where, "Decimal input should be an integer, float, string or Decimal object", value
        )
    if not number.is_finite():
        raise _Refused(where, "Input should be a finite number", value)
    if number < _ZERO:
        raise _Refused(where, "Input should be greater than or equal to 0", value)
    if number >= MAX_MAGNITUDE:
        raise _Refused(where, f"Input should be less than {MAX_MAGNITUDE}", value)
    return number


def _day(key: Any, meter: str) -> date | datetime:
    kind = type(key)
    if kind is date or kind is datetime:
        return key  # type: ignore[no-any-return]
    if kind is str:
        try:
            if len(key) == 10:
                return date.fromisoformat(key)
            return datetime.fromisoformat(key.replace("Z", "+00:00"))
        except ValueError:
            pass
    raise _error(f"{meter}.{_shown(key)}", "Input should be a valid datetime or date", key)


def _values(values: Mapping[Any, Any]) -> dict[str, Decimal]:
    out = {}
    for name, value in values.items():
        if type(name) is not str:
            raise _Refused(_shown(name), "Input should be a valid string (a register)", name)
        out[name] = _number(value, name)
    return out


_READING_KEYS = frozenset({"values", "quality", "method"})


def _reading(value: Any, single: str) -> MeterReading:
    kind = type(value)
    if kind is Decimal or kind is int or kind is float or kind is str:
        return MeterReading({single: _number(value, single)})
    if kind is MeterReading:
        values, quality, method = value.values, value.quality, value.method
    elif kind is dict or isinstance(value, Mapping):
        values = value.get("values")
        if type(values) is dict or isinstance(values, Mapping):
            if not value.keys() <= _READING_KEYS:
                extra = sorted(str(k) for k in value if k not in _READING_KEYS)
                raise _Refused(extra[0], "Extra inputs are not permitted")
            quality, method = value.get("quality", "good"), value.get("method")
        else:
            values = dict(value)
            quality, method = values.pop("quality", "good"), values.pop("method", None)
    else:
        return MeterReading({single: _number(value, single)})
    if type(quality) is not str:
        raise _Refused("quality", "Input should be a valid string", quality)
    if len(quality) > MAX_QUALITY:
        raise _Refused("quality", f"String should have at most {MAX_QUALITY} characters", quality)
    if method is not None and method != INTERPOLATED:
        raise _Refused("method", f"Input should be '{INTERPOLATED}'", method)
    return MeterReading(_values(values), quality, method)


def parse_readings(raw: Any, single: str = SINGLE) -> Readings:
    """Check a case's ``readings`` section (meter → day → reading) into :class:`Readings`.

    A reading is a bare number (the value of ``single``, the one register), a mapping of
    register → value with optional ``quality`` and ``method``, the same under ``values``,
    or a :class:`MeterReading` (checked too). :class:`Readings` are returned as they are:
    only this function (and a case reading back its own canonical form) makes them.
    Raises CaseError naming the item.
    """
    if type(raw) is Readings:
        return raw  # checked already: a case's own readings (see Case.canonical_and_stored)
    if not isinstance(raw, Mapping):
        raise CaseError("readings: Input should be a valid dictionary")
    out = Readings()
    for meter, series in raw.items():
        if type(meter) is not str or _ID.fullmatch(meter) is None:
            raise _error(_shown(meter), "String should match pattern '^[A-Za-z0-9_.:\\-]+$'", meter)
        if not isinstance(series, Mapping):
            raise _error(meter, "Input should be a valid dictionary", series)
        checked: dict[date | datetime, MeterReading] = {}
        for key, value in series.items():
            day = _day(key, meter)
            try:
                checked[day] = _reading(value, single)
            except _Refused as exc:
                below = "" if exc.where == SINGLE else f".{exc.where}"
                raise _error(f"{meter}.{day.isoformat()}{below}", exc.message, exc.value) from None
        out[meter] = checked
    return out
