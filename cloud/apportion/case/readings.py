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

import json
import re
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

import numpy as np

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
    if type(raw) is Readings or type(raw) is ReadingTable:
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


# ---------------------------------------------------------------------- readings as arrays

_TRAILING = re.compile(r"\.?0+\n")


def register_texts(values: np.ndarray) -> list[str]:
    """Register values [register unit] as text with at most 6 decimals, trailing zeros
    dropped (``f"{v:.6f}".rstrip("0").rstrip(".")`` of each), formatted in bulk: one ``%``
    over the whole array and one regular expression, not one call per value."""
    flat = values.ravel().tolist()
    if not flat:
        return []
    text = ("%.6f\n" * len(flat)) % tuple(flat)
    return _TRAILING.sub("\n", text).split("\n")[:-1]


class ReadingTable(Mapping[str, Mapping[date, MeterReading]]):
    """A close's readings as arrays (decision 0036): meter → local day → reading, without
    one Python object per reading.

    Rows are sorted by meter, then day; ``bounds[i]:bounds[i + 1]`` are meter ``i``'s rows.
    ``days`` are the rows' dates as ordinals (:meth:`date.toordinal`); ``texts`` the
    register values [register unit] in canonical decimal text, row by row and register by
    register (``registers`` order); ``values`` the same as float64 (rows × registers), as
    the engine reads them; ``estimated`` marks an interpolated reading (quality
    ``estimated``, method ``interpolated``), the others are ``good``. Built by
    :meth:`from_values`, which checks the values with :func:`parse_readings`' rules and
    error texts. As a mapping it reads like :class:`Readings` (a meter's series built on
    access, a reading's values as :class:`~decimal.Decimal`); the case's canonical form and
    the engine's inputs use the arrays directly."""

    __slots__ = ("_at", "bounds", "days", "estimated", "meters", "registers", "texts", "values")

    def __init__(
        self,
        meters: Sequence[str],
        registers: Sequence[str],
        bounds: Sequence[int],
        days: Sequence[int],
        texts: list[str],
        values: np.ndarray,
        estimated: Sequence[bool],
    ) -> None:
        self.meters = tuple(meters)
        self.registers = tuple(registers)
        self.bounds = list(bounds)
        self.days = list(days)
        self.texts = texts
        self.values = values
        self.estimated = list(estimated)
        self._at = {m: i for i, m in enumerate(self.meters)}

    @classmethod
    def from_values(
        cls,
        meters: Sequence[str],
        registers: Sequence[str],
        counts: np.ndarray,
        days: np.ndarray,
        values: np.ndarray,
        estimated: np.ndarray,
    ) -> ReadingTable:
        """The table of ``meters`` (sorted, each with ``counts[i]`` rows, days ascending):
        ``values`` (rows × registers) as float [register unit], written with at most 6
        decimals (:func:`register_texts`) and checked as :func:`parse_readings` checks a
        reading's text: finite, not negative, below :data:`MAX_MAGNITUDE`. CaseError names
        the first reading at fault (``readings.M1.2026-04-15.total: …``)."""
        if list(meters) != sorted(meters):
            raise ValueError("ReadingTable: meters must be sorted")
        for meter in meters:
            if type(meter) is not str or _ID.fullmatch(meter) is None:
                raise _error(
                    _shown(meter), "String should match pattern '^[A-Za-z0-9_.:\\-]+$'", meter
                )
        texts = register_texts(values)
        bad = ~np.isfinite(values) | (values < 0) | (values >= float(MAX_MAGNITUDE) * (1 - 1e-9))
        if bad.any():
            bounds = np.concatenate([[0], np.cumsum(counts)])
            for flat in np.flatnonzero(bad.ravel()).tolist():
                row, k = divmod(flat, len(registers))
                meter = meters[int(np.searchsorted(bounds, row, side="right")) - 1]
                day = date.fromordinal(int(days[row])).isoformat()
                text = texts[flat]
                if text == "-0":
                    texts[flat] = "0"  # -0.0000001 reads 0, as Decimal("-0") does
                    continue
                try:
                    _number(text, registers[k])
                except _Refused as exc:
                    raise _error(f"{meter}.{day}.{exc.where}", exc.message, exc.value) from None
        # the floats the engine reads: the texts' values (as the case holds them)
        numbers = np.array(list(map(float, texts)), dtype=np.float64).reshape(values.shape)
        return cls(
            meters,
            registers,
            np.concatenate([[0], np.cumsum(counts)]).tolist(),
            days.tolist(),
            texts,
            numbers,
            estimated.tolist(),
        )

    # -- the mapping: meter → its series
    def __getitem__(self, meter: str) -> Mapping[date, MeterReading]:
        i = self._at[meter]
        return _TableSeries(self, self.bounds[i], self.bounds[i + 1])

    def __iter__(self) -> Iterator[str]:
        return iter(self.meters)

    def __len__(self) -> int:
        return len(self.meters)

    def __contains__(self, meter: object) -> bool:
        return meter in self._at

    def reading(self, row: int) -> MeterReading:
        """Row ``row`` as a :class:`MeterReading` (values as decimals in canonical form)."""
        n = len(self.registers)
        values = {r: Decimal(self.texts[row * n + k]) for k, r in enumerate(self.registers)}
        if self.estimated[row]:
            return MeterReading(values, "estimated", INTERPOLATED)
        return MeterReading(values)

    def canonical_text(self) -> str:
        """The readings section's canonical JSON text (meters and days sorted, a reading as
        ``{"method":…,"quality":…,"values":{register: text}}``): byte for byte what
        :func:`~cloud.apportion.case.canonical.plain_json` writes for the same readings
        held as :class:`Readings`, written in one pass over the rows."""
        iso: dict[int, str] = {}
        for d in set(self.days):
            iso[d] = date.fromordinal(d).isoformat()
        keys = sorted(range(len(self.registers)), key=lambda k: self.registers[k])
        names = [json.dumps(self.registers[k], ensure_ascii=False) for k in keys]
        heads = (
            '{"method":null,"quality":"good","values":{',
            '{"method":"interpolated","quality":"estimated","values":{',
        )
        n = len(self.registers)
        texts = self.texts
        if n == 1:
            name = names[0]
            rows = [
                f'"{iso[d]}":{heads[e]}{name}:"{t}"}}}}'
                for d, e, t in zip(self.days, self.estimated, texts, strict=True)
            ]
        else:
            rows = [
                f'"{iso[d]}":{heads[e]}'
                + ",".join(
                    f'{name}:"{texts[row * n + k]}"' for k, name in zip(keys, names, strict=True)
                )
                + "}}"
                for row, (d, e) in enumerate(zip(self.days, self.estimated, strict=True))
            ]
        bounds = self.bounds
        parts = []
        for i in sorted(range(len(self.meters)), key=lambda i: self.meters[i]):
            meter = json.dumps(self.meters[i], ensure_ascii=False)
            parts.append(meter + ":{" + ",".join(rows[bounds[i] : bounds[i + 1]]) + "}")
        return "{" + ",".join(parts) + "}"


class _TableSeries(Mapping[date, MeterReading]):
    """One meter's rows of a :class:`ReadingTable`: local day → reading, built on access."""

    __slots__ = ("hi", "lo", "table")

    def __init__(self, table: ReadingTable, lo: int, hi: int) -> None:
        self.table, self.lo, self.hi = table, lo, hi

    def _row(self, day: object) -> int:
        if type(day) is not date:
            raise KeyError(day)
        ordinal = day.toordinal()
        row = bisect_left(self.table.days, ordinal, self.lo, self.hi)
        if row == self.hi or self.table.days[row] != ordinal:
            raise KeyError(day)
        return row

    def __getitem__(self, day: date) -> MeterReading:
        return self.table.reading(self._row(day))

    def __contains__(self, day: object) -> bool:
        try:
            self._row(day)
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[date]:
        return (date.fromordinal(d) for d in self.table.days[self.lo : self.hi])

    def __len__(self) -> int:
        return self.hi - self.lo
