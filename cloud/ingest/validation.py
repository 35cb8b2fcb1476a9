"""Validation at ingest (the V of VEE): flag implausible readings, never drop them.

Checks per series (meter, quantity), against the last value known before the reading:
- a cumulative register going down: a rollover when the register's capacity explains it and
  the implied use is plausible against the meter's average daily use, else ``decrease``;
- a ``spike``: use per day far above the meter's average;
- a ``gap``: a reading after a long silence (informational);
- ``clock_skew``: a read time in the future of the receive time; ``clock_free_running``: the
  gateway said its clock was not synchronised (informational).
A flagged reading whose value cannot be trusted is stored with quality ``suspect``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from cloud.series.base import SeriesPoint

NS_PER_DAY = 86_400 * 10**9
CUMULATIVE_PREFIXES = ("energy_", "water_volume", "gas_volume", "heat_energy")
#: register capacity per quantity prefix (the value at which it wraps to 0), in its unit:
#: DL/T645 energy XXXXXX.XX kWh wraps at 1,000,000 kWh
DEFAULT_CAPACITY = {"energy_": 1_000_000.0, "water_volume": 100_000.0}
UNTRUSTED = frozenset({"decrease", "spike", "clock_skew"})


@dataclass(frozen=True)
class VeeRules:
    """Thresholds: ``rollover_factor`` × average daily use × elapsed days bounds a plausible
    rollover; a rise of more than ``spike_factor`` × the expected use (average per day ×
    elapsed days) plus ``spike_min_delta`` (in the quantity's unit; keeps one step of the
    register's resolution, read every second, from looking like a spike) is a spike;
    silence longer than ``gap_s`` seconds is a gap; a read time more than ``skew_s``
    seconds after the receive time is clock skew."""

    rollover_factor: float = 3.0
    spike_factor: float = 10.0
    spike_min_delta: float = 1.0
    gap_s: float = 2 * 3600
    skew_s: float = 300
    rate_weight: float = 0.2  # weight of the newest interval in the average daily use


@dataclass(slots=True)
class SeriesState:
    """What validation remembers of a series: last time (UTC ns), last value, average use
    per day (unit/day, None until two readings were seen). A value: replaced, never
    changed in place (not frozen, which makes building one several times slower; one is
    built per reading)."""

    time_ns: int
    value: float
    per_day: float | None = None


def is_cumulative(quantity: str) -> bool:
    return quantity.startswith(CUMULATIVE_PREFIXES)


def capacity_of(quantity: str) -> float | None:
    return next((c for prefix, c in DEFAULT_CAPACITY.items() if quantity.startswith(prefix)), None)


def validate(
    points: list[SeriesPoint],
    state: dict[tuple[str, str, str], SeriesState],
    received_ns: int,
    *,
    clock_synced: bool = True,
    rules: VeeRules = VeeRules(),
) -> list[SeriesPoint]:
    """Return ``points`` with flags (and quality ``suspect`` where untrusted) and update
    ``state`` (keyed by site, meter, quantity) in place. ``points`` of one series must come
    in time order."""
    checked = []
    for p in points:
        flags: list[str] = []
        if p.time_ns > received_ns + rules.skew_s * 1e9:
            flags.append("clock_skew")
        if not clock_synced:
            flags.append("clock_free_running")
        key = (p.site, p.meter, p.quantity)
        prev = state.get(key)
        if p.value is not None and is_cumulative(p.quantity):
            flags += _register_checks(p, prev, rules)
            if prev is None or p.time_ns > prev.time_ns:
                state[key] = _next_state(p, prev, flags, rules)
        if flags:
            quality = (
                "suspect" if UNTRUSTED.intersection(flags) and p.value is not None else p.quality
            )
            p = replace(p, quality=quality, flags=",".join(filter(None, [p.flags, *flags])))
        checked.append(p)
    return checked


def _register_checks(p: SeriesPoint, prev: SeriesState | None, rules: VeeRules) -> list[str]:
    if prev is None or p.time_ns <= prev.time_ns or p.value is None:
        return []  # nothing earlier known, or an older reading arriving late: no baseline
    flags = []
    days = (p.time_ns - prev.time_ns) / NS_PER_DAY
    if p.time_ns - prev.time_ns > rules.gap_s * 1e9:
        flags.append("gap")
    delta = p.value - prev.value
    if delta < 0:
        capacity = capacity_of(p.quantity)
        wrapped = None if capacity is None else p.value + capacity - prev.value
        plausible = (
            wrapped is not None
            and prev.per_day is not None
            and wrapped <= rules.rollover_factor * prev.per_day * max(days, 1 / 24)
        )
        flags.append("rollover" if plausible else "decrease")
    elif (
        prev.per_day is not None
        and days > 0
        and delta > rules.spike_factor * prev.per_day * days + rules.spike_min_delta
    ):
        flags.append("spike")
    return flags


def _next_state(
    p: SeriesPoint, prev: SeriesState | None, flags: list[str], rules: VeeRules
) -> SeriesState:
    assert p.value is not None
    if prev is None or UNTRUSTED.intersection(flags):
        # An untrusted value does not become the baseline, except that a decrease is kept
        # as the new baseline (a replaced meter) while the average use carries on.
        if prev is not None and "decrease" in flags:
            return SeriesState(p.time_ns, p.value, prev.per_day)
        return prev or SeriesState(p.time_ns, p.value)
    days = (p.time_ns - prev.time_ns) / NS_PER_DAY
    delta = p.value - prev.value
    if "rollover" in flags:
        delta += capacity_of(p.quantity) or 0.0
    if days <= 0:
        return SeriesState(p.time_ns, p.value, prev.per_day)
    rate = delta / days
    per_day = (
        rate
        if prev.per_day is None
        else (rules.rate_weight * rate + (1 - rules.rate_weight) * prev.per_day)
    )
    return SeriesState(p.time_ns, p.value, per_day)
