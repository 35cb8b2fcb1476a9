"""Time and consumption for simulated meters: clocks, and a deterministic load model.

The load model gives a site's active power as a piecewise-constant level per local hour
(a daily shape × a per-day factor × a small per-hour factor, all drawn from the seed), and
the energy registers as its exact integral, so a test can ask the model what the meter
must answer at any instant. Energy is integrated in integer watt-seconds, which keeps every
register exactly non-decreasing; registers are truncated (not rounded) to 0.01 kWh as a
meter display does.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_DOWN, Decimal
from typing import Any, Protocol

CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")
DEFAULT_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)

# Relative load per local hour of a mixed residential/office building (peak in the
# evening), mean about 1.
DAILY_SHAPE = (
    0.45, 0.40, 0.38, 0.37, 0.38, 0.45, 0.70, 0.95, 1.10, 1.15, 1.15, 1.20,
    1.15, 1.10, 1.10, 1.15, 1.25, 1.45, 1.60, 1.65, 1.55, 1.30, 0.95, 0.65,
)  # fmt: skip
# Tariff period per local hour: 1 sharp (尖), 2 peak (峰), 3 flat (平), 4 valley (谷).
# A typical provincial time-of-use table: valley 23-07, sharp 19-21.
TARIFF_OF_HOUR = (
    4, 4, 4, 4, 4, 4, 4, 3, 2, 2, 2, 3,
    3, 3, 3, 3, 3, 2, 2, 1, 1, 2, 2, 4,
)  # fmt: skip
TARIFFS = (1, 2, 3, 4)
WS_PER_KWH = Decimal(3_600_000)
CENT_KWH = Decimal("0.01")
NOMINAL_VOLTAGE_V = 220.0
NOMINAL_FREQUENCY_HZ = 50.0


class Clock(Protocol):
    """Where simulated time comes from."""

    def now(self) -> datetime:
        """Current time, timezone-aware UTC."""
        ...


class SystemClock:
    """Real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class SimClock:
    """Manually driven time, so tests and demos can run a month of meter time in seconds."""

    def __init__(self, start: datetime = DEFAULT_EPOCH) -> None:
        self._now = _aware(start)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        """Move forward by ``seconds`` (s, >= 0); returns the new time."""
        if seconds < 0:
            raise ValueError(f"a clock only advances; got {seconds} s")
        self._now += timedelta(seconds=seconds)
        return self._now

    def set(self, dt: datetime) -> None:
        """Jump to ``dt`` (timezone-aware)."""
        self._now = _aware(dt)


def _aware(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        raise ValueError(f"expected a timezone-aware datetime, got naive {dt.isoformat()}")
    return dt.astimezone(UTC)


def _kwh(watt_seconds: int) -> Decimal:
    return (Decimal(watt_seconds) / WS_PER_KWH).quantize(CENT_KWH, ROUND_DOWN)


class LoadModel:
    """Deterministic consumption of one metering point.

    ``base_kw`` is the mean active power (kW); ``seed`` picks the day-to-day and
    hour-to-hour variation, the power factor and the meter's opening reading. Registers
    start at the opening reading at ``epoch`` and stay constant before it. Local hours (for
    the daily shape and the tariff periods) are those of ``tz``, a fixed-offset zone.
    """

    def __init__(
        self,
        base_kw: float,
        seed: int,
        *,
        epoch: datetime = DEFAULT_EPOCH,
        tz: timezone = CHINA_STANDARD_TIME,
    ) -> None:
        if base_kw < 0:
            raise ValueError(f"base_kw must be >= 0 kW, got {base_kw}")
        self.base_kw = base_kw
        self.seed = seed
        self.epoch = _aware(epoch)
        self.tz = tz
        rng = random.Random(f"meter:{seed}")
        self.power_factor = Decimal(rng.randint(900, 990)) / 1000
        # Opening readings per tariff (kWh), total = their sum, as on a meter in service.
        self.opening_t_kwh = tuple(Decimal(rng.randint(100, 20_000)) for _ in TARIFFS)
        self._tan_phi = Decimal(math.tan(math.acos(float(self.power_factor))))
        self._phase_shift = rng.uniform(0, 2 * math.pi)
        local_epoch = self.epoch.astimezone(tz)
        self._day0 = local_epoch.date()
        self._lock = threading.Lock()
        # Cumulative watt-seconds per tariff at the start of each local day since day0.
        self._day_starts: list[tuple[int, ...]] = [(0, 0, 0, 0)]
        self._epoch_ws = self._cumulative_ws(self.epoch)

    # -- power levels -------------------------------------------------------------------

    def _hourly_watts(self, day_index: int) -> tuple[int, ...]:
        rng = random.Random(f"{self.seed}:{day_index}")
        day_factor = rng.uniform(0.85, 1.15)
        return tuple(
            round(self.base_kw * 1000 * shape * day_factor * rng.uniform(0.9, 1.1))
            for shape in DAILY_SHAPE
        )

    def _position(self, t: datetime) -> tuple[int, int, int]:
        """(local day index since day0, hour, second within the hour) of ``t``."""
        local = _aware(t).astimezone(self.tz).replace(tzinfo=None)
        seconds = int((local - datetime.combine(self._day0, datetime.min.time())).total_seconds())
        day, rest = divmod(seconds, 86_400)
        hour, second = divmod(rest, 3_600)
        return day, hour, second

    def _day_start(self, day: int) -> tuple[int, ...]:
        with self._lock:
            while len(self._day_starts) <= day:
                watts = self._hourly_watts(len(self._day_starts) - 1)
                totals = list(self._day_starts[-1])
                for hour, tariff in enumerate(TARIFF_OF_HOUR):
                    totals[tariff - 1] += 3_600 * watts[hour]
                self._day_starts.append(tuple(totals))
            return self._day_starts[day]

    def _cumulative_ws(self, t: datetime) -> tuple[int, ...]:
        """Watt-seconds per tariff from local midnight of day0 to ``t`` (0 before day0)."""
        day, hour, second = self._position(t)
        if day < 0:
            return (0, 0, 0, 0)
        totals = list(self._day_start(day))
        watts = self._hourly_watts(day)
        for h in range(hour):
            totals[TARIFF_OF_HOUR[h] - 1] += 3_600 * watts[h]
        totals[TARIFF_OF_HOUR[hour] - 1] += second * watts[hour]
        return tuple(totals)

    def _since_epoch_ws(self, t: datetime) -> tuple[int, ...]:
        t = max(_aware(t), self.epoch)
        return tuple(
            now - start for now, start in zip(self._cumulative_ws(t), self._epoch_ws, strict=True)
        )

    # -- registers ------------------------------------------------------------------------

    def energy_import_kwh(self, t: datetime) -> Decimal:
        """Forward active energy register, total (kWh, 2 decimals, truncated)."""
        return sum(self.opening_t_kwh, Decimal(0)) + _kwh(sum(self._since_epoch_ws(t)))

    def tariff_import_kwh(self, t: datetime, tariff: int) -> Decimal:
        """Forward active energy register of tariff 1..4 (kWh, 2 decimals, truncated)."""
        return self.opening_t_kwh[tariff - 1] + _kwh(self._since_epoch_ws(t)[tariff - 1])

    def energy_export_kwh(self, t: datetime) -> Decimal:
        """Reverse active energy (kWh); this model is a pure consumer, so always 0."""
        return Decimal("0.00")

    def reactive_import_kvarh(self, t: datetime) -> Decimal:
        """Inductive reactive energy (kvarh, 2 decimals): active energy × tan φ."""
        active = Decimal(sum(self._since_epoch_ws(t))) / WS_PER_KWH
        return (active * self._tan_phi).quantize(CENT_KWH, ROUND_DOWN)

    # -- instantaneous values -------------------------------------------------------------

    def power_kw(self, t: datetime) -> Decimal:
        """Total active power (kW, 4 decimals): the level of the current local hour."""
        day, hour, _ = self._position(t)
        watts = self._hourly_watts(max(day, 0))[hour]
        return Decimal(watts) / 1000

    def reactive_power_kvar(self, t: datetime) -> Decimal:
        """Total reactive power (kvar): active power × tan φ."""
        return self.power_kw(t) * self._tan_phi

    def apparent_power_kva(self, t: datetime) -> Decimal:
        """Total apparent power (kVA): active power / power factor."""
        return self.power_kw(t) / self.power_factor

    def voltage_v(self, t: datetime, phase: int) -> Decimal:
        """Phase voltage (V, 1 decimal) for phase 0..2: nominal ± a slow daily ripple."""
        minutes = self._minute_of_day(t)
        ripple = 4.0 * math.sin(2 * math.pi * minutes / 1_440 + self._phase_shift + phase)
        return Decimal(f"{NOMINAL_VOLTAGE_V + ripple:.1f}")

    def current_a(self, t: datetime, phase: int) -> Decimal:
        """Phase current (A, 3 decimals), the load shared evenly over three phases."""
        per_phase_w = float(self.power_kw(t)) * 1000 / 3
        volts = float(self.voltage_v(t, phase))
        return Decimal(f"{per_phase_w / (volts * float(self.power_factor)):.3f}")

    def frequency_hz(self, t: datetime) -> Decimal:
        """Grid frequency (Hz, 2 decimals)."""
        minutes = self._minute_of_day(t)
        return Decimal(f"{NOMINAL_FREQUENCY_HZ + 0.03 * math.sin(minutes / 7):.2f}")

    def max_demand(self, t: datetime) -> tuple[Decimal, datetime]:
        """Highest hourly power level this local calendar month up to ``t`` (kW, 4 decimals),
        and the local (naive) start of that hour."""
        day, hour, _ = self._position(t)
        local_day = self._day0 + timedelta(days=day)
        first = day - (local_day.day - 1)
        best = (-1, first, 0)
        for d in range(max(first, 0), day + 1):
            watts = self._hourly_watts(d)
            for h in range(24 if d < day else hour + 1):
                if watts[h] > best[0]:
                    best = (watts[h], d, h)
        watts, d, h = best
        when = datetime.combine(self._day0 + timedelta(days=d), datetime.min.time())
        return Decimal(max(watts, 0)) / 1000, when + timedelta(hours=h)

    def _minute_of_day(self, t: datetime) -> float:
        local = _aware(t).astimezone(self.tz)
        return local.hour * 60 + local.minute + local.second / 60


class FeederLoad(LoadModel):
    """A meter upstream of others (a main or branch meter): the loads below it × (1 +
    ``loss``) plus a load of its own (``base_kw``, kW; 0 for none), so that its register
    grows by what its sub-meters measure plus the line loss — a consistent meter tree."""

    def __init__(
        self, below: Sequence[LoadModel], loss: float, base_kw: float, seed: int, **kw: Any
    ) -> None:
        super().__init__(base_kw, seed, **kw)
        if not 0 <= loss < 1:
            raise ValueError(f"loss must be a fraction in [0, 1), got {loss}")
        self.below = tuple(below)
        self.loss = loss

    def _since_epoch_ws(self, t: datetime) -> tuple[int, ...]:
        own = super()._since_epoch_ws(t)
        below = [b._since_epoch_ws(t) for b in self.below]
        factor = 1 + self.loss
        return tuple(o + round(factor * sum(b[i] for b in below)) for i, o in enumerate(own))

    def power_kw(self, t: datetime) -> Decimal:
        factor = Decimal(str(1 + self.loss))
        return super().power_kw(t) + factor * sum((b.power_kw(t) for b in self.below), Decimal(0))


class SecondaryLoad(LoadModel):
    """What a meter behind a current transformer of ``ratio`` : 1 measures: the ``primary``
    load ÷ ``ratio`` (its registers count secondary kWh; × ratio gives the primary)."""

    def __init__(self, primary: LoadModel, ratio: int) -> None:
        super().__init__(0, primary.seed, epoch=primary.epoch, tz=primary.tz)
        if ratio < 1:
            raise ValueError(f"a CT ratio is at least 1, got {ratio}")
        self.primary = primary
        self.ratio = ratio

    def _since_epoch_ws(self, t: datetime) -> tuple[int, ...]:
        return tuple(v // self.ratio for v in self.primary._since_epoch_ws(t))

    def power_kw(self, t: datetime) -> Decimal:
        return self.primary.power_kw(t) / self.ratio
