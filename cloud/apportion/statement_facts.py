"""The structured facts of a statement (schema ``mf.statement/2``): numbers, display names and
rule parameters instead of sentences, so that a page renders the words in its reader's
language (:mod:`cloud.statements.wording`) from exactly what was signed.

- :func:`line_calc`: a line's arithmetic as data (the key, its weights and their unit, the
  node's energy, λ, the formula's parameters ...).
- :func:`line_price`: the unit price a line's amount was computed at (the bill's effective
  price) next to the catalogue price, and their ratio.
- :func:`edge_reading`: a meter's reading at the first or last day of a stay: read, taken
  from an interpolated reading, interpolated here between the readings around it, or
  estimated from the energy the engine estimated.
- :func:`tenant_flags`: the run's flags a tenant may see (its own meters and nodes only).
- :class:`Names`: display names from the site data, the id where none is given.

Pure functions, no I/O. Energies [kWh] as strings with 3 decimals, prices [CNY/kWh] with up
to 6, weights with up to 6 significant decimals: the statement is JSON and signed as text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from cloud.apportion.case.schema import CaseSchema, MeterReading, MeterSpec
from cloud.apportion.engine_result import EngineResult, Flag
from cloud.apportion.estimation import Method
from cloud.apportion.lines import Component, Step
from cloud.apportion.money import DEMAND, TariffKind

SCHEMA_STATEMENT_V2 = "mf.statement/2"
#: the unit of each key's weights (codes; the words are the page's)
WEIGHT_UNIT = {
    "area": "m2_day",
    "usage": "kwh",
    "per_unit": "unit_day",
    "coefficient": "coef_day",
    "blend": "share",
    "formula": "m2_kwh",
    "exclusive": "kwh",
}
_KWH_WEIGHTS = frozenset(k for k, unit in WEIGHT_UNIT.items() if unit == "kwh")


def num(value: float | Decimal, places: int = 3) -> str:
    """``value`` with ``places`` decimals (``-0.000`` written ``0.000``)."""
    text = f"{float(value):.{places}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def trim(value: float | Decimal, places: int = 6) -> str:
    """``value`` rounded to ``places`` decimals without trailing zeros (at least 2 kept):
    ``0.468750`` → ``0.46875``, ``0.6`` → ``0.60``."""
    text = num(value, places)
    if "." in text:
        whole, frac = text.split(".")
        frac = frac.rstrip("0").ljust(2, "0")
        text = f"{whole}.{frac}"
    return text


@dataclass(frozen=True)
class Names:
    """Display names from the site data; :meth:`of` falls back to the id."""

    site: str = ""
    units: Mapping[str, str] = field(default_factory=dict)
    nodes: Mapping[str, str] = field(default_factory=dict)
    meters: Mapping[str, str] = field(default_factory=dict)
    tenants: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of_case(cls, case: CaseSchema) -> Names:
        tenants: dict[str, str] = {}
        for stays in case.occupancy.values():
            for stay in stays:
                if stay.name:
                    tenants[stay.tenant] = stay.name
        return cls(
            site=case.name,
            units={u.id: u.name for u in case.units if u.name},
            nodes={n.id: n.name for n in case.tree if n.name},
            meters={m.id: m.name for m in case.meters if m.name},
            tenants=tenants,
        )


class NodeTotals:
    """A run's node figures that lines quote, each computed once per node: the loss rate λ,
    the node's energy and its residual [kWh] over the period (all registers)."""

    def __init__(self, result: EngineResult) -> None:
        self.result = result
        self._of: dict[int, tuple[float, float, float]] = {}

    def of(self, node: int) -> tuple[float, float, float]:
        """(λ, node kWh, residual kWh) of ``node`` (tree index)."""
        found = self._of.get(node)
        if found is None:
            r = self.result
            found = self._of[node] = (
                float(r.loss_rate[node]),
                float(r.node_kwh[node].sum()),
                float(r.residual_kwh[node].sum()),
            )
        return found


def line_calc(
    result: EngineResult,
    component: Component,
    origin: int,
    step: Step | None,
    kwh: float,
    weight: float,
    ideal: float,
    totals: NodeTotals | None = None,
) -> dict[str, Any]:
    """A line's arithmetic as data: ``kind`` (own, key, excess_loss, formula_remainder,
    unallocated, demand) and the numbers it is written with (``totals``: the run's
    :class:`NodeTotals`, shared by its lines)."""
    if component in (Component.OWN_USE, Component.LANDLORD_LOAD):
        return {"kind": "own", "kwh": num(kwh)}
    if component is Component.EXCESS_LOSS:
        rule = result.inputs.tree.rules[origin]
        cap = rule.loss_cap if rule and rule.loss_cap is not None else 0.0
        rate, node_kwh, _residual = (totals or NodeTotals(result)).of(origin)
        return {
            "kind": "excess_loss",
            "loss_rate": num(rate, 6),
            "loss_cap": num(cap, 6),
            "node_kwh": num(node_kwh),
            "kwh": num(kwh),
        }
    if component is Component.FORMULA_REMAINDER:
        return {"kind": "formula_remainder", "kwh": num(kwh)}
    if component is Component.UNALLOCATED:
        return {"kind": "unallocated", "cny": num(ideal / 100, 4)}
    if step is None:
        return {"kind": "none"}
    calc: dict[str, Any] = {
        "kind": "demand" if component is Component.DEMAND else "key",
        "basis": step.basis,
        "origin_kwh": num(step.kwh),
        # energies with 3 decimals as everywhere; other weights to 6 significant decimals
        "weight": num(weight) if step.basis in _KWH_WEIGHTS else trim(weight, 6),
        "weight_total": (
            num(step.weight_total) if step.basis in _KWH_WEIGHTS else trim(step.weight_total, 6)
        ),
        "weight_unit": WEIGHT_UNIT.get(step.basis, ""),
        "kwh": num(kwh),
    }
    rule = result.inputs.tree.rules[origin]
    if component is Component.DEMAND:
        calc["demand_cny"] = num(step.amount / 100, 2)
        calc["cny"] = num(ideal / 100, 4)
    if component is Component.LOSS:
        rate, node_kwh, residual = (totals or NodeTotals(result)).of(origin)
        calc["loss"] = {
            "loss_rate": num(rate, 6),
            "node_kwh": num(node_kwh),
            "residual_kwh": num(residual),
        }
    if step.basis == "blend" and rule is not None:
        calc["p"] = trim(rule.blend_p, 4)
    if step.basis == "formula" and rule is not None and rule.formula is not None:
        f = rule.formula
        calc["formula"] = {
            "driver": f.driver,
            "base": trim(f.base, 4),
            "span": trim(f.span, 4),
            "passed_kwh": num(step.kwh),
            "node_kwh": num(step.kwh + step.landlord_kwh),
        }
    return calc


def catalogue_price(result: EngineResult, register: str, version: str) -> dict[str, Any]:
    """The catalogue price of ``register`` in tariff ``version``: ``{"kind", "price"}`` with
    the price [CNY/kWh; CNY/kW·month for demand] or ``tiers`` (``upto`` kWh, ``price``)."""
    tariff = next(t for t in result.inputs.tariffs if t.id == version)
    if register == DEMAND:
        price = tariff.demand_price
        return {"kind": "demand", "price": None if price is None else trim(price, 6)}
    if tariff.kind is TariffKind.TIERED:
        return {
            "kind": "tiered",
            "tiers": [
                {
                    "upto": None if t.upto_kwh is None else trim(t.upto_kwh, 3),
                    "price": trim(t.price, 6),
                }
                for t in tariff.tiers
            ],
        }
    return {"kind": tariff.kind.value, "price": trim(tariff.prices[register], 6)}


def line_price(
    catalogue: Mapping[str, Any],
    kwh: float,
    ideal: float,
    memo: dict[tuple[int, str], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The price the line's amount was computed at (``applied`` = amount ÷ kWh [CNY/kWh],
    from the utility bill's pot), the ``catalogue`` price and ``ratio`` = applied ÷
    catalogue when they differ (None otherwise; a tiered or demand line has no ratio).

    ``memo``: the prices given already, for the lines of one run (most of a pot's lines
    have the same applied price); the same dict is given for the same price."""
    if catalogue.get("kind") == "demand" or not kwh:
        return {"applied": None, "catalogue": catalogue, "ratio": None}
    text = trim(ideal / kwh / 100, 6)
    if memo is None:
        return _price(catalogue, text)
    key = (id(catalogue), text)
    found = memo.get(key)
    if found is None:
        found = memo[key] = _price(catalogue, text)
    return found


def _price(catalogue: Mapping[str, Any], text: str) -> dict[str, Any]:
    applied = Decimal(text)
    listed = catalogue.get("price")
    ratio = None
    if listed is not None and Decimal(listed) and applied != Decimal(listed):
        ratio = trim(applied / Decimal(listed), 4)
    return {"applied": trim(applied, 6), "catalogue": catalogue, "ratio": ratio}


def edge_reading(
    series: Mapping[str, MeterReading],
    day: str,
    multiplier: float,
    use_kwh: Mapping[str, float] | None = None,
    other_end: Mapping[str, Decimal] | None = None,
) -> dict[str, Any] | None:
    """The meter's register values at local midnight opening ``day`` (ISO date).

    ``series``: the meter's readings by local day (ISO). ``source``: ``read`` (a reading of
    that day), ``interpolated`` (the day's reading was interpolated by the close, or is
    interpolated here by days between the readings around it) or ``estimated`` (no reading
    after it: the other end's value plus ``use_kwh`` [kWh] ÷ ``multiplier``). None when
    there is nothing to show.
    """
    if day in series:
        reading = series[day]
        return {
            "values": {k: str(v) for k, v in reading.values.items()},
            "quality": reading.quality,
            "source": "interpolated" if reading.method == "interpolated" else "read",
        }
    days = sorted(series)
    before = [d for d in days if d < day]
    after = [d for d in days if d > day]
    if before and after:
        a, b = before[-1], after[0]
        ra, rb = series[a], series[b]
        share = Decimal((date.fromisoformat(day) - date.fromisoformat(a)).days) / Decimal(
            (date.fromisoformat(b) - date.fromisoformat(a)).days
        )
        values = {
            k: str((v + (rb.values[k] - v) * share).quantize(Decimal("0.01")))
            for k, v in ra.values.items()
            if k in rb.values
        }
        return {"values": values, "quality": "interpolated", "source": "interpolated"}
    if other_end is not None and use_kwh is not None and multiplier:
        values = {
            k: str(
                (v + Decimal(str(use_kwh.get(k, 0.0))) / Decimal(str(multiplier))).quantize(
                    Decimal("0.01")
                )
            )
            for k, v in other_end.items()
        }
        return {"values": values, "quality": "estimated", "source": "estimated"}
    return None


def _meters_of(subject: str) -> list[str] | None:
    """The meter ids a flag's subject names (``meter U1``, ``meters U1, U2``), else None."""
    for head in ("meters ", "meter "):
        if subject.startswith(head):
            body = subject[len(head) :].split(", …")[0]
            return [m.strip() for m in body.split(",") if m.strip()]
    return None


def tenant_flags(
    flags: Sequence[Flag], own_meters: set[str], own_nodes: set[str]
) -> list[dict[str, Any]]:
    """The flags a tenant's statement carries: those of its own meters (the subject cut to
    them, the message left out: it may count other meters), of its unit and the nodes above
    it, and of the tariff and the bill; never another unit's meters or nodes."""
    out = []
    for f in flags:
        meters = _meters_of(f.subject)
        if meters is not None:
            mine = [m for m in meters if m in own_meters]
            if mine:
                subject = ("meter " if len(mine) == 1 else "meters ") + ", ".join(mine)
                out.append({"code": f.code, "subject": subject, "holds": f.holds, "message": ""})
            continue
        if f.subject.startswith("node ") and f.subject[5:] not in own_nodes:
            continue
        out.append({"code": f.code, "subject": f.subject, "holds": f.holds, "message": f.message})
    return out


def _series(case: CaseSchema, meter: str, days: Sequence[str]) -> dict[str, MeterReading]:
    """``meter``'s readings by local day (ISO) for :func:`edge_reading` at ``days``: just
    those days when each has a reading keyed by its date (a close's or a stored case), else
    all of them (to interpolate between)."""
    readings = case.readings.get(meter, {})
    found = {}
    for day in days:
        reading = readings.get(date.fromisoformat(day))
        if reading is None:
            return {case.reading_day(meter, at).isoformat(): r for at, r in readings.items()}
        found[day] = reading
    return found


class MeterEnergies:
    """A run's meter multipliers, energies [kWh] and estimation methods, for every
    statement's meter section: a stay of one slice (most are) reads its meters' values from
    lists taken once per slice; a longer stay sums the engine's arrays over its slices."""

    def __init__(self, result: EngineResult) -> None:
        self.result = result
        self._slices: dict[int, tuple[list[Any], list[list[float]], list[list[float]]]] = {}
        self._methods: list[list[str]] | None = None

    def over(self, m: int, slices: Any) -> tuple[float, list[float], list[float]]:
        """Meter ``m``'s mean multiplier and its measured and estimated energy per register
        over ``slices`` (consecutive slice indices)."""
        r = self.result
        first = int(slices[0])
        if len(slices) == 1:  # one value each: the mean and the sums are that value
            lists = self._slices.get(first)
            if lists is None:
                lists = self._slices[first] = (
                    r.inputs.meters.multiplier[:, first].tolist(),
                    r.measured_kwh[:, first, :].tolist(),
                    r.estimated_kwh[:, first, :].tolist(),
                )
            return float(lists[0][m]), lists[1][m], lists[2][m]
        registers = range(len(r.inputs.registers))
        return (
            float(r.inputs.meters.multiplier[m, slices].mean()),
            [float(r.measured_kwh[m, slices, i].sum()) for i in registers],
            [float(r.estimated_kwh[m, slices, i].sum()) for i in registers],
        )

    def methods(self, m: int) -> list[str]:
        """How meter ``m``'s missing days were filled, per register (``none``, ...)."""
        if self._methods is None:
            labels = {int(x): Method(int(x)).label for x in Method}
            self._methods = [
                [labels[x] for x in row] for row in self.result.estimation_method.tolist()
            ]
        return self._methods[m]


def meter_section(
    case: CaseSchema,
    result: EngineResult,
    meters: Sequence[int],
    start: str,
    end: str,
    slices: Any,
    local_midnight: Any,
    specs: Mapping[str, MeterSpec],
    energies: MeterEnergies | None = None,
) -> list[dict[str, Any]]:
    """The readings and energies of a stay's ``meters`` (installation indices) from
    ``start`` to ``end`` (ISO local days, ``end`` the day after the stay): the readings at
    the stay's first and last midnight, or an installation's own dates within it
    (:func:`edge_reading`), the multiplier, and per register the measured and estimated
    energy [kWh] and how it was estimated.
    ``local_midnight(day)`` gives ``{"local", "utc"}`` of a day's midnight; ``specs`` is
    :meth:`~cloud.apportion.case.schema.CaseSchema.meter_index`, built once by the caller,
    and ``energies`` the run's :class:`MeterEnergies` (one for all statements)."""
    inputs = result.inputs
    registers = inputs.registers
    energies = MeterEnergies(result) if energies is None else energies
    out = []
    for m in meters:
        meter = inputs.meters.ids[m]
        multiplier, measured_of, estimated_of = energies.over(m, slices)
        measured = dict(zip(registers, measured_of, strict=True))
        estimated = dict(zip(registers, estimated_of, strict=True))
        use = {r: measured[r] + estimated[r] for r in measured}
        spec = specs.get(meter)
        first_day, last_day = start, end
        if spec is not None and spec.installed is not None:
            first_day = max(first_day, spec.installed.isoformat())
        if spec is not None and spec.removed is not None:
            last_day = min(last_day, spec.removed.isoformat())
        series = _series(case, meter, (first_day, last_day))
        first = edge_reading(series, first_day, multiplier)
        last = edge_reading(
            series,
            last_day,
            multiplier,
            use,
            {k: Decimal(v) for k, v in first["values"].items()} if first else None,
        )
        if first is not None:
            first["at"] = local_midnight(first_day)
        if last is not None:
            last["at"] = local_midnight(last_day)
        method = energies.methods(m)
        out.append(
            {
                "meter": meter,
                "multiplier": trim(multiplier, 6).rstrip("0").rstrip("."),
                "start": first,
                "end": last,
                "measured_kwh": {r: num(v) for r, v in measured.items()},
                "estimated_kwh": {r: num(v) for r, v in estimated.items()},
                "estimation": {
                    r: method[i] for i, r in enumerate(inputs.registers) if method[i] != "none"
                },
            }
        )
    return out
