"""What comes in at the boundary: lease terms, rent schedules, free rent, deposits and the
policy a lease is run by, as validated pydantic models.

Amounts are integer cents; rates are Decimals (0.05 = 5 %); dates are local calendar dates
and a lease's ``end_on`` is exclusive (a one-year lease from 2026-01-01 ends on 2027-01-01).
"""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

LeaseKind = Literal["standard", "trial", "internal"]
"""``trial`` stays and ``internal`` use are leases too, but never count as occupied."""

FreeRentAnchor = Literal["start", "signing", "handover"]
CycleMonths = Literal[1, 2, 3, 6, 12]
DEPOSIT_STEPS = ("inspection", "settlement", "approval", "payment")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class FixedRent(_Strict):
    """The same rent for the whole term [cents per month]."""

    kind: Literal["fixed"] = "fixed"
    monthly_cents: int = Field(gt=0)


class RentStepTerm(_Strict):
    """Rent [cents per month] from a date on."""

    from_: date = Field(alias="from")
    monthly_cents: int = Field(ge=0)


class SteppedRent(_Strict):
    """Rent that changes on given dates; the first step starts on the lease's start."""

    kind: Literal["stepped"] = "stepped"
    steps: list[RentStepTerm] = Field(min_length=1)

    @model_validator(mode="after")
    def _increasing(self) -> SteppedRent:
        days = [s.from_ for s in self.steps]
        if days != sorted(set(days)):
            raise ValueError(f"steps: dates must increase strictly, got {days}")
        return self


class PercentRise(_Strict):
    """Rent [cents per month] rising by ``rise`` (0.05 = 5 %) every ``every_months`` from
    the start; each new rent is rounded half up to the cent."""

    kind: Literal["percent_rise"] = "percent_rise"
    monthly_cents: int = Field(gt=0)
    rise: Decimal = Field(ge=Decimal("-0.5"), le=Decimal(1))
    every_months: int = Field(12, ge=1, le=60)


class CpiLinked(_Strict):
    """Rent [cents per month] indexed to the CPI every ``every_months``: the rise is
    CPI(m − lag) ÷ CPI(m − lag − 12) − 1 for the adjustment month m, clamped to
    [``floor``, ``cap``]; each new rent is rounded half up to the cent."""

    kind: Literal["cpi"] = "cpi"
    monthly_cents: int = Field(gt=0)
    floor: Decimal = Field(Decimal(0), ge=Decimal("-0.5"), le=Decimal(1))
    cap: Decimal = Field(ge=Decimal("-0.5"), le=Decimal(1))
    every_months: int = Field(12, ge=1, le=60)
    lag_months: int = Field(1, ge=0, le=12)

    @model_validator(mode="after")
    def _floor_below_cap(self) -> CpiLinked:
        if self.floor > self.cap:
            raise ValueError(f"floor {self.floor} is above cap {self.cap}")
        return self


RentSchedule = Annotated[
    FixedRent | SteppedRent | PercentRise | CpiLinked, Field(discriminator="kind")
]


class FreeRent(_Strict):
    """A rent-free window of ``months`` + ``days`` from an anchor: the lease's start, the
    signing, or the handover of the keys (when the contract says so)."""

    months: int = Field(0, ge=0, le=24)
    days: int = Field(0, ge=0, le=366)
    anchor: FreeRentAnchor = "start"

    @model_validator(mode="after")
    def _not_empty(self) -> FreeRent:
        if self.months == 0 and self.days == 0:
            raise ValueError("a free-rent window needs months or days")
        return self


class DepositTerms(_Strict):
    """The deposit: a number of months of the first rent, or a fixed amount [cents]."""

    months: Decimal | None = Field(None, ge=0, le=12)
    cents: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _one_of(self) -> DepositTerms:
        if (self.months is None) == (self.cents is None):
            raise ValueError("give the deposit as months or as cents, exactly one")
        return self


class LeaseTerms(_Strict):
    """A new lease as it comes from the contract. ``end_on`` is exclusive."""

    id: str = Field(min_length=1, max_length=64)
    tenant_id: str
    unit_id: str
    manager_id: str
    kind: LeaseKind = "standard"
    parent_id: str | None = None
    policy_id: str | None = None
    start_on: date
    end_on: date
    rent: RentSchedule
    free_rent: list[FreeRent] = Field(default_factory=list)
    deposit: DepositTerms = DepositTerms(months=Decimal(2))
    cycle_months: CycleMonths = 1
    due_days: int = Field(10, ge=0, le=60)
    auto_renew: bool = False
    renewal_term_months: int = Field(12, ge=1, le=120)

    @model_validator(mode="after")
    def _dates(self) -> LeaseTerms:
        if self.end_on <= self.start_on:
            raise ValueError(f"end_on {self.end_on} must be after start_on {self.start_on}")
        if isinstance(self.rent, SteppedRent) and self.rent.steps[0].from_ != self.start_on:
            raise ValueError(
                f"rent.steps: the first step starts on {self.rent.steps[0].from_}, "
                f"the lease on {self.start_on}"
            )
        return self


class LateFeePolicy(_Strict):
    """Late fee on an invoice: ``daily_rate`` of the unpaid amount per day beyond the
    ``grace_days`` after the due date, capped at ``cap_rate`` of the invoice's total."""

    grace_days: int = Field(5, ge=0, le=60)
    daily_rate: Decimal = Field(Decimal("0.0005"), ge=0, le=Decimal("0.01"))
    cap_rate: Decimal = Field(Decimal("0.10"), ge=0, le=1)


LadderAction = Literal["reminder", "internal_task", "call_task", "legal_handover", "escalation"]
"""What a rung of the collections ladder does: ``reminder`` a message to the tenant,
``internal_task`` a collections task for the manager, ``call_task`` a call task for the
manager, ``legal_handover`` the case handed to legal (a ``legal_case`` task, the supervisor
told), ``escalation`` a notice and task for the manager's supervisor."""
LADDER_ACTIONS: tuple[str, ...] = (
    "reminder",
    "internal_task",
    "call_task",
    "legal_handover",
    "escalation",
)
#: Most rungs of one ladder; a rung's day is 1 to :data:`MAX_LADDER_DAY` after the due date.
MAX_RUNGS = 10
MAX_LADDER_DAY = 90


class LadderRung(_Strict):
    """A rung of the collections ladder: ``days`` after the due date, what happens."""

    days: int = Field(ge=1, le=MAX_LADDER_DAY)
    action: LadderAction


DEFAULT_LADDER: tuple[LadderRung, ...] = (
    LadderRung(days=1, action="reminder"),
    LadderRung(days=3, action="internal_task"),
    LadderRung(days=7, action="call_task"),
    LadderRung(days=15, action="legal_handover"),
)


class LeasePolicy(_Strict):
    """How leases are run: renewal reminders [days before the end] (earlier, to the
    supervisor, for a high move-out risk), acknowledgement window
    [days], auto-renew window [days], renewal price band (rates), arrears that block a
    renewal [cents], late fees, the SLA of each deposit-refund step [hours] and the
    collections ladder (rungs [days after the due date], strictly increasing, at most
    :data:`MAX_RUNGS`)."""

    reminder_offsets_days: tuple[int, ...] = Field((90, 60, 30), min_length=1, max_length=10)
    #: a lease whose move-out probability (cloud.risk) is at least ``risk_threshold`` gets
    #: one more reminder ``risk_lead_days`` before the first offset, to the supervisor
    risk_threshold: float = Field(0.5, gt=0, le=1)
    risk_lead_days: int = Field(30, ge=0, le=180)
    acknowledge_within_days: int = Field(7, ge=1, le=60)
    auto_renew_window_days: int = Field(30, ge=1, le=120)
    price_band: tuple[Decimal, Decimal] = (Decimal("0.03"), Decimal("0.05"))
    arrears_block_cents: int = Field(100_000, ge=0, le=10**12)
    late_fee: LateFeePolicy = LateFeePolicy()
    deposit_sla_hours: dict[str, int] = Field(
        default_factory=lambda: {"inspection": 24, "settlement": 48, "approval": 24, "payment": 24}
    )
    ladder: tuple[LadderRung, ...] = Field(DEFAULT_LADDER, min_length=1, max_length=MAX_RUNGS)

    @model_validator(mode="after")
    def _consistent(self) -> LeasePolicy:
        offsets = self.reminder_offsets_days
        if (
            not offsets
            or any(not 0 < o <= 730 for o in offsets)
            or len(set(offsets)) != len(offsets)
        ):
            raise ValueError(f"reminder_offsets_days: distinct days 1 to 730, got {offsets}")
        low, high = self.price_band
        if low > high:
            raise ValueError(f"price_band: low {low} is above high {high}")
        if set(self.deposit_sla_hours) != set(DEPOSIT_STEPS):
            raise ValueError(
                f"deposit_sla_hours: expected the steps {DEPOSIT_STEPS}, got "
                f"{sorted(self.deposit_sla_hours)}"
            )
        if any(not 1 <= h <= 8760 for h in self.deposit_sla_hours.values()):
            raise ValueError(
                f"deposit_sla_hours: 1 to 8760 hours each, got {self.deposit_sla_hours}"
            )
        days = [rung.days for rung in self.ladder]
        if any(b <= a for a, b in itertools.pairwise(days)):
            raise ValueError(f"ladder: days must increase strictly, got {days}")
        return self

    @property
    def expiring_window_days(self) -> int:
        """A lease is ``expiring`` from its first reminder offset before the end."""
        return max(self.reminder_offsets_days)


DEFAULT_POLICY = LeasePolicy()
