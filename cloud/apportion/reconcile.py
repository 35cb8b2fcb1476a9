"""A run's reconciliation: per register, the utility bill against the sum of the run's lines.

For each register of the bill (``total`` or the TOU registers ``T1``–``T4``, and the demand
charge) the bill's amount [cents] and the main meter's energy [kWh] are set beside the sum of
the run's charge lines, split into own use, shared (common meters, formula remainders) and
loss, with the difference. The amounts reconcile to the cent by construction (each pot is
rounded once into its lines); the energies differ only where the tree does not balance (a
negative residual, which holds the run). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from cloud.apportion.lines import Component
from cloud.apportion.money import DEMAND

#: Energy is compared to the hundredth of a kWh, as the page shows it [kWh].
KWH_QUANTUM = Decimal("0.01")
#: Lines keep energy to the milliwatt-hour [kWh]; the meter is read to the same.
_LINE_KWH = Decimal("0.000001")

#: The reconciliation's three parts, by line component.
GROUPS: dict[str, str] = {
    Component.OWN_USE.label: "own_use",
    Component.LANDLORD_LOAD.label: "own_use",
    Component.COMMON.label: "shared",
    Component.FORMULA_REMAINDER.label: "shared",
    Component.UNALLOCATED.label: "shared",
    Component.DEMAND.label: "shared",
    Component.LOSS.label: "loss",
    Component.EXCESS_LOSS.label: "loss",
}
PARTS = ("own_use", "shared", "loss")


@dataclass(frozen=True)
class LineSum:
    """Charge lines of one register and component: energy [kWh] and amount [cents]."""

    register: str
    component: str
    kwh: Decimal
    cents: int


@dataclass(frozen=True)
class RegisterReconciliation:
    """One register: the bill [cents] and the main meter's energy [kWh] (None when not
    known, e.g. the demand charge's kWh) against the lines' parts [kWh, cents]."""

    register: str
    bill_cents: int | None
    meter_kwh: Decimal | None
    kwh: Mapping[str, Decimal]
    cents: Mapping[str, int]

    @property
    def lines_kwh(self) -> Decimal:
        """Σ lines [kWh]."""
        return sum(self.kwh.values(), Decimal(0))

    @property
    def lines_cents(self) -> int:
        """Σ lines [cents]."""
        return sum(self.cents.values())

    @property
    def diff_cents(self) -> int | None:
        """Bill − Σ lines [cents] (0 when the run reconciles)."""
        return None if self.bill_cents is None else self.bill_cents - self.lines_cents

    @property
    def diff_kwh(self) -> Decimal | None:
        """Meter − Σ lines [kWh], to the hundredth."""
        if self.meter_kwh is None:
            return None
        diff = (self.meter_kwh - self.lines_kwh).quantize(KWH_QUANTUM)
        return diff if diff else Decimal("0.00")  # never "-0.00"

    @property
    def balanced(self) -> bool:
        """The amounts reconcile to the cent (the energy may not: see the module)."""
        return self.diff_cents == 0


def bill_cents(bill: Mapping[str, object]) -> dict[str, int]:
    """The bill of a case's ``bill`` section per register [cents]: ``amounts`` and, when
    there is one, ``demand`` (under :data:`~cloud.apportion.money.DEMAND`)."""
    amounts = bill.get("amounts") or {}
    assert isinstance(amounts, Mapping)
    out = {str(r): _cents(v) for r, v in amounts.items()}
    if bill.get("demand") not in (None, ""):
        out[DEMAND] = _cents(bill["demand"])
    return out


def _cents(amount: object) -> int:
    return int((Decimal(str(amount)) * 100).to_integral_value())


def reconcile(
    bill: Mapping[str, int],
    meter_kwh: Mapping[str, Decimal] | None,
    lines: Iterable[LineSum],
) -> list[RegisterReconciliation]:
    """Per register (the bill's order, then any register only the lines have): the bill
    [cents] and the meter's energy [kWh] against Σ lines by part. ``meter_kwh`` is the
    main meter's energy per register (None: not known); the demand register has none."""
    kwh: dict[str, dict[str, Decimal]] = {}
    cents: dict[str, dict[str, int]] = {}
    for line in lines:
        part = GROUPS.get(line.component, "shared")
        k = kwh.setdefault(line.register, dict.fromkeys(PARTS, Decimal(0)))
        c = cents.setdefault(line.register, dict.fromkeys(PARTS, 0))
        k[part] += line.kwh
        c[part] += line.cents
    registers = list(bill) + [r for r in kwh if r not in bill]
    out = []
    for register in registers:
        meter = None
        if meter_kwh is not None and register != DEMAND:
            meter = Decimal(meter_kwh.get(register, Decimal(0))).quantize(_LINE_KWH)
        out.append(
            RegisterReconciliation(
                register,
                bill.get(register),
                meter,
                kwh.get(register, dict.fromkeys(PARTS, Decimal(0))),
                cents.get(register, dict.fromkeys(PARTS, 0)),
            )
        )
    return out


def total(rows: list[RegisterReconciliation]) -> RegisterReconciliation:
    """The registers summed (the demand register's kWh left out of the energy)."""
    meter: Decimal | None = Decimal(0)
    kwh = dict.fromkeys(PARTS, Decimal(0))
    cents = dict.fromkeys(PARTS, 0)
    bill = 0
    for row in rows:
        bill += row.bill_cents or 0
        for part in PARTS:
            cents[part] += row.cents[part]
            if row.register != DEMAND:
                kwh[part] += row.kwh[part]
        if row.register != DEMAND:
            meter = None if meter is None or row.meter_kwh is None else meter + row.meter_kwh
    return RegisterReconciliation("", bill, meter, kwh, cents)
