"""Validation at ingest: implausible readings are flagged and kept, never dropped."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.ingest.service import IngestService, Outcome
from cloud.ingest.validation import NS_PER_DAY, SeriesState, VeeRules, validate
from cloud.registry.db import open_registry
from cloud.registry.service import register_gateway
from cloud.series.base import SeriesPoint
from cloud.series.sqlite import SqliteSeriesStore
from edge.keys import GatewayIdentity
from tests.support.factories import T0, envelope, reading, received

HOUR = NS_PER_DAY // 24


def pt(hours: float, value: float | None, quantity: str = "energy_import") -> SeriesPoint:
    return SeriesPoint(
        site="s",
        meter="M1",
        quantity=quantity,
        time_ns=int(hours * HOUR),
        value=value,
        quality="good" if value is not None else "timeout",
    )


def run(points, state=None, received_h: float = 1000, **kw):  # type: ignore[no-untyped-def]
    state = {} if state is None else state
    out = validate(points, state, int(received_h * HOUR), **kw)
    return [(p.quality, p.flags) for p in out], state


def test_steady_register_passes_untouched():
    flags, state = run([pt(0, 100.0), pt(1, 102.0), pt(2, 104.0), pt(3, 106.0)])
    assert flags == [("good", "")] * 4
    assert state[("s", "M1", "energy_import")].per_day == pytest.approx(48.0)


def test_register_going_down_is_a_suspect_decrease():
    flags, state = run([pt(0, 100.0), pt(1, 102.0), pt(2, 50.0)])
    assert flags[2] == ("suspect", "decrease")
    assert state[("s", "M1", "energy_import")].value == 50.0  # the new baseline (e.g. replaced)


def test_wrap_at_capacity_with_plausible_use_is_a_rollover_not_a_fault():
    flags, _ = run([pt(0, 999_990.00), pt(1, 999_998.00), pt(2, 6.00)])
    assert flags[2] == ("good", "rollover")


def test_wrap_that_would_mean_implausible_use_is_a_decrease():
    flags, _ = run([pt(0, 500_000.0), pt(1, 500_002.0), pt(2, 400_000.0)])
    assert flags[2] == ("suspect", "decrease")


def test_spike_far_above_average_use_is_flagged_and_not_the_new_average():
    flags, state = run([pt(0, 100.0), pt(1, 101.0), pt(2, 102.0), pt(3, 150.0)])
    assert flags[3] == ("suspect", "spike")
    assert state[("s", "M1", "energy_import")].per_day == pytest.approx(24.0)


def test_reading_after_a_long_silence_is_marked_gap_but_trusted():
    flags, _ = run([pt(0, 100.0), pt(1, 101.0), pt(30, 130.0)])
    assert flags[2] == ("good", "gap")


def test_read_time_in_the_future_is_clock_skew():
    flags, _ = run([pt(10, 100.0)], received_h=9)
    assert flags == [("suspect", "clock_skew")]


def test_free_running_gateway_clock_is_noted():
    flags, _ = run([pt(1, 100.0)], clock_synced=False)
    assert flags == [("good", "clock_free_running")]


def test_late_older_reading_is_not_judged_against_a_newer_baseline():
    state = {("s", "M1", "energy_import"): SeriesState(int(5 * HOUR), 110.0, 24.0)}
    flags, state = run([pt(3, 105.0)], state)
    assert flags == [("good", "")]
    assert state[("s", "M1", "energy_import")].time_ns == 5 * HOUR


def test_instantaneous_quantities_have_no_register_checks():
    flags, _ = run([pt(0, 230.0, "voltage_a"), pt(1, 100.0, "voltage_a")])
    assert flags == [("good", "")] * 2


def test_thresholds_are_configurable():
    flags, _ = run(
        [pt(0, 100.0), pt(1, 101.0), pt(2, 102.0), pt(3, 106.0)], rules=VeeRules(spike_factor=2.0)
    )
    assert flags[3] == ("suspect", "spike")


def test_flagged_readings_are_stored_with_their_flag(tmp_path):
    gw = GatewayIdentity(Ed25519PrivateKey.generate())
    registry = open_registry(f"sqlite:///{tmp_path / 'r.sqlite'}")
    with registry.begin() as s:
        register_gateway(s, "s1", "gw1", gw.public_key)
    store = SqliteSeriesStore(tmp_path / "series.sqlite")
    service = IngestService(registry, store, now=received)
    values = ["100.00", "101.00", "102.00", "90.00"]  # the last one goes down
    results = [
        service.handle(
            "mf/v1/s1/gw1/up/readings", envelope(gw, seq, [reading(minute=60 * seq, value=v)])
        )
        for seq, v in enumerate(values)
    ]
    assert [r.outcome for r in results] == [Outcome.STORED] * 4
    frame = store.read("M1", "energy_import", T0, T0 + timedelta(days=1), site="s1")
    assert frame.values.tolist() == [100.0, 101.0, 102.0, 90.0]
    assert frame.quality.tolist() == ["good", "good", "good", "suspect"]
    # A fresh worker (no cached state) judges the next reading against the stored history.
    service2 = IngestService(registry, store, now=received)
    service2.handle(
        "mf/v1/s1/gw1/up/readings", envelope(gw, 4, [reading(minute=300, value="80.00")])
    )
    assert (
        store.read("M1", "energy_import", T0, T0 + timedelta(days=1), site="s1").quality[-1]
        == "suspect"
    )


def test_one_resolution_step_read_every_second_is_not_a_spike():
    # 5 kW read every second: the 0.01 kWh register moves one step every ~7 s.
    values = [100.00 + 0.01 * (k // 7) for k in range(60)]
    flags, _ = run([pt(k / 3600, v) for k, v in enumerate(values)])
    assert {f for f in flags} == {("good", "")}
