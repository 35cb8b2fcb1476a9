"""The pure functions under the engine: consumption, estimation, rounding, tariffs."""

from __future__ import annotations

import importlib.util
import threading
from datetime import date
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from cloud.apportion import arrays, engine, rounding, rounding_pass
from cloud.apportion.case.loading import load_case
from cloud.apportion.consumption import fast_slice_energy, unwrap_registers
from cloud.apportion.engine import apportion
from cloud.apportion.engine_inputs import EngineInputs
from cloud.apportion.errors import ConservationError, EstimationError
from cloud.apportion.estimation import Method, estimation_rates
from cloud.apportion.money import Tier, tiered_cost
from cloud.apportion.rounding import largest_remainder, largest_remainder_parts
from cloud.apportion.tree import NodeKind, TreeShape

NAN = np.nan


def unwrap(
    values: list[float], capacity: float = NAN, history: float = NAN, bidirectional: bool = False
):  # type: ignore[no-untyped-def]
    registers = np.array(values, dtype=np.float64)[None, :, None]
    return unwrap_registers(
        registers,
        capacity=np.array([capacity]),
        bidirectional=np.array([bidirectional]),
        average_per_day=np.array([[history]]),
        active_from=np.array([0]),
        active_to=np.array([len(values) - 1]),
        plausibility=3.0,
        meter_ids=["M"],
        register_names=["total"],
        first_day=date(2026, 4, 1),
    )


def test_screening_finds_gaps_and_drops_in_one_pass() -> None:
    readings = np.cumsum(np.ones((7, 5, 2)), axis=1)
    readings[2, 3, 1] = NAN
    readings[4, 4, 0] = 0.5
    readings[5, 0, :] = 100.0  # a drop; the next row starting lower must not matter
    multiplier = np.full((7, 2), 10.0)
    ok, kwh = fast_slice_energy(readings, np.array([0, 1, 4]), multiplier, block_rows=3)
    assert ok.tolist() == [True, True, False, True, False, False, True]
    assert kwh[0].tolist() == [[10.0, 10.0], [30.0, 30.0]]


def test_screening_on_two_threads_matches_one() -> None:
    rng = np.random.default_rng(3)
    readings = np.cumsum(rng.uniform(0, 5, (200 * 64, 4, 2)), axis=1)
    readings[rng.integers(0, readings.shape[0], 50), 2, 1] = NAN
    multiplier = rng.uniform(1, 3, (readings.shape[0], 2))
    bp = np.array([0, 2, 3])
    ok, kwh = fast_slice_energy(readings, bp, multiplier, block_rows=200)  # two halves
    ok1, kwh1 = fast_slice_energy(readings, bp, multiplier, block_rows=readings.shape[0])
    assert np.array_equal(ok, ok1) and np.array_equal(kwh[ok], kwh1[ok])
    assert np.allclose(kwh[ok], (np.diff(readings[:, bp], axis=1) * multiplier[:, :, None])[ok])


def test_gap_between_readings_is_interpolated_by_days() -> None:
    u = unwrap([10.0, NAN, NAN, 40.0])
    assert u.values[0, :, 0].tolist() == [0.0, 10.0, 20.0, 30.0]
    assert not u.missing.any()
    assert u.interpolated[0].tolist() == [False, True, True, False]


def test_days_after_the_last_reading_are_missing() -> None:
    u = unwrap([10.0, 12.0, NAN, NAN])
    assert u.missing[0, :, 0].tolist() == [False, True, True]


def test_plausible_wrap_is_unwrapped_and_implausible_one_left_missing() -> None:
    # 9 → 99 → (wraps at 100) 8 → 98: the wrap is 9 kWh, average (90 + 90) / 2 days
    u = unwrap([9.0, 99.0, 8.0, 98.0], capacity=100.0)
    assert u.values[0, :, 0].tolist() == [0.0, 90.0, 99.0, 189.0]
    assert u.rollover[0] and not u.implausible[0]
    # history says 1 kWh/day: a 9 kWh wrap in one day is more than 3 × 1 × 1
    u = unwrap([9.0, 10.0, 8.0, 9.0], capacity=100.0, history=1.0)
    assert u.implausible[0] and u.missing[0, :, 0].tolist() == [False, True, False]


def test_bidirectional_meter_keeps_its_drops() -> None:
    u = unwrap([10.0, 5.0, 12.0], bidirectional=True)
    assert u.values[0, :, 0].tolist() == [0.0, -5.0, 2.0]


def test_estimation_takes_history_then_comparable_units_then_building() -> None:
    # meters: 0 history; 1 no history, peers 2 (complete); 3 no peers, building has 2 and 4
    measured = np.array([[10.0], [5.0], [30.0], [8.0], [60.0]])
    covered = np.array([[10.0], [10.0], [30.0], [20.0], [30.0]])
    missing = np.array([[20.0], [20.0], [0.0], [10.0], [0.0]])
    history = np.array([[2.0], [NAN], [NAN], [NAN], [NAN]])
    area = np.array([10.0, 20.0, 10.0, 50.0, 20.0])
    peers = np.array([0, 0, 0, 1, 2])
    building = np.array([0, 0, 0, 0, 0])
    rate, method = estimation_rates(
        measured_kwh=measured,
        covered_days=covered,
        missing_days=missing,
        history_kwh_per_day=history,
        area=area,
        peer_group=peers,
        building_group=building,
        meter_ids=list("ABCDE"),
        register_names=["total"],
    )
    assert method[:, 0].tolist() == [
        Method.HISTORY,
        Method.COMPARABLE_UNITS,
        0,
        Method.BUILDING_AVERAGE,
        0,
    ]
    assert rate[0, 0] == 2.0
    assert rate[1, 0] == pytest.approx(30.0 / (30 * 10) * 20)  # peer C: 0.1 kWh/m²·d
    assert rate[3, 0] == pytest.approx((30.0 + 60.0) / (30 * 10 + 30 * 20) * 50)


def test_estimation_without_any_method_names_the_meter() -> None:
    with pytest.raises(EstimationError, match="M-MAIN total"):
        estimation_rates(
            measured_kwh=np.array([[1.0]]),
            covered_days=np.array([[1.0]]),
            missing_days=np.array([[3.0]]),
            history_kwh_per_day=np.array([[NAN]]),
            area=np.array([0.0]),
            peer_group=np.array([-1]),
            building_group=np.array([-1]),
            meter_ids=["M-MAIN"],
            register_names=["total"],
        )


def test_rounding_ties_go_to_the_earlier_line() -> None:
    assert largest_remainder(3, np.array([0.75, 0.75, 0.75, 0.75])).tolist() == [1, 1, 1, 0]


def test_rounding_takes_back_cents_when_the_grid_overshoots() -> None:
    # 50000 lines of 0.99998 cent (49999 cents in all): the 2⁻¹⁴-cent grid rounds each
    # up to a whole cent, 50000 in all; one cent is taken back from the first line.
    cents = largest_remainder(49_999, np.full(50_000, 0.99998))
    assert int(cents.sum()) == 49_999
    assert cents[0] == 0 and (cents[1:] == 1).all()


def test_rounding_over_parts_keeps_one_order() -> None:
    parts = largest_remainder_parts(2, [np.array([0.5]), np.array([0.5, 0.5, 0.5])])
    assert [p.tolist() for p in parts] == [[1], [1, 0, 0]]


def test_rounding_refuses_shares_that_do_not_add_up() -> None:
    with pytest.raises(ConservationError, match="pot is 100 cents"):
        largest_remainder(100, np.array([10.0, 20.0]))


def test_tiers_with_prorated_bounds() -> None:
    tiers = (
        Tier(Decimal(200), Decimal("0.50")),
        Tier(Decimal(400), Decimal("0.60")),
        Tier(None, Decimal("0.80")),
    )
    assert tiered_cost(Decimal(260), tiers, Decimal("0.5")) == Decimal("158.00")
    assert tiered_cost(Decimal(150), tiers, Decimal(1)) == Decimal("75.00")
    assert tiered_cost(Decimal(500), tiers, Decimal(1)) == Decimal("300.00")


def test_bench_loop_baseline_agrees_with_the_engine() -> None:
    path = Path(__file__).parents[2] / "bench" / "apportion_engine.py"
    spec = importlib.util.spec_from_file_location("apportion_bench", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    inputs = bench.site(300)
    result = apportion(inputs)
    loop = bench.python_loop(inputs)
    assert result.lines.pot_cents(4) == [p.cents for p in result.pots]
    seg_node = result.shape.participant[result.segments.participant]
    engine: dict[tuple[int, int], int] = {}
    for block in result.lines.blocks:
        if block.origin == 0 and len(block) == 1:
            continue  # the landlord's excess-loss line
        register = result.inputs.registers.index(result.pots[block.pot].register)
        assert block.cents is not None
        for seg, c in zip(block.segment, block.cents, strict=True):
            key = (int(seg_node[seg]), register)
            engine[key] = engine.get(key, 0) + int(c)
    assert engine == loop


def _rounding_by_sorting(total: int, parts: list[np.ndarray]) -> list[int]:
    """Largest remainder the plain way: every line on the 2⁻¹⁴-cent grid, sorted by
    remainder (largest first, earlier line first), leftover cents to the first."""
    grid = [int(g) for g in np.rint(np.concatenate(parts) * 16_384).astype(np.int64)]
    cents = [g >> 14 for g in grid]
    leftover = total - sum(cents)
    if leftover >= 0:
        order = sorted(range(len(grid)), key=lambda i: (-(grid[i] & 16_383), i))
        for i in order[:leftover]:
            cents[i] += 1
    else:
        order = sorted(
            (i for i in range(len(grid)) if cents[i] > 0), key=lambda i: (grid[i] & 16_383, i)
        )
        for i in order[:-leftover]:
            cents[i] -= 1
    return cents


@pytest.mark.parametrize("lines", [50, 30_000, 400_000])
@pytest.mark.parametrize("shape", ["spread", "few remainders", "skewed"])
def test_rounding_matches_sorting_every_line_on_large_pots(lines: int, shape: str) -> None:
    # large pots take the sampled selection path; few distinct remainders (many ties) and
    # skewed remainders are where a sample brackets worst
    rng = np.random.default_rng(lines)
    if shape == "spread":
        ideal = rng.gamma(2.0, 150.0, lines)
    elif shape == "few remainders":
        ideal = rng.integers(0, 500, lines) + rng.choice([0.25, 0.5, 0.75], lines)
    else:
        ideal = rng.integers(0, 500, lines) + rng.beta(0.3, 8.0, lines)
    parts = [ideal[: lines // 3], ideal[lines // 3 :], np.array([17.5])]
    exact = np.rint(np.concatenate(parts) * 16_384).sum() / 16_384
    for total in (int(np.floor(exact)), int(np.floor(exact)) - lines // 7):
        scale = total / exact
        scaled = [p * scale for p in parts]
        cents = np.concatenate(largest_remainder_parts(total, scaled))
        assert int(cents.sum()) == total
        assert cents.tolist() == _rounding_by_sorting(total, scaled)


def test_rounding_is_exact_when_the_sample_misleads() -> None:
    # every line the strided sample looks at has remainder 0, every other 0.5 cent: the
    # sample's bracket misses the wanted remainder and the selection falls back to all lines
    lines = 300_000
    ideal = np.full(lines, 3.5)
    ideal[:: lines // (1 << 14)] = 3.0
    total = int(np.floor(ideal.sum()))
    cents = largest_remainder(total, ideal)
    assert cents.tolist() == _rounding_by_sorting(total, [ideal])


def test_rounding_takes_back_cents_on_a_large_pot_in_line_order() -> None:
    lines = 400_000
    ideal = np.full(lines, 0.99998)
    ideal[::3] = 0.99999
    total = int(np.floor(ideal.sum()))
    cents = largest_remainder(total, ideal)
    assert int(cents.sum()) == total
    assert cents.tolist() == _rounding_by_sorting(total, [ideal])


@pytest.mark.parametrize("lines", [40, 90_000])
def test_rounding_writes_into_the_arrays_given(lines: int) -> None:
    parts = [np.full(lines // 2, 0.5), np.full(lines - lines // 2, 0.25)]
    total = int(np.floor(sum(p.sum() for p in parts)))
    out = [np.empty(p.size, dtype=np.int64) for p in parts]
    cents = largest_remainder_parts(total, parts, out)
    assert all(c is o for c, o in zip(cents, out, strict=True))
    assert [c.tolist() for c in cents] == [
        list(p) for p in np.split(np.array(_rounding_by_sorting(total, parts)), [lines // 2])
    ]


def _tou_inputs() -> EngineInputs:
    return load_case(Path(__file__).parents[1] / "cases" / "tou.yaml").to_engine_inputs()


def test_a_pipelined_run_computes_what_one_thread_computes(monkeypatch: pytest.MonkeyPatch) -> None:
    # the pipeline (a pot rounded on a worker while the next is allocated, the rest on the
    # calling thread) is only a schedule: every line, amount and flag is the same
    inputs = _tou_inputs()
    alone = apportion(inputs)
    real, rounded_on = engine._round_pot, set()
    worker_holds, caller_rounded = threading.Event(), threading.Event()

    def recorded(pot, allocation, cents=None):  # type: ignore[no-untyped-def]
        # on so small a case either thread could round every pot before the other takes
        # one (the worker each as it is queued, or the caller all it takes back): the
        # worker holds its first pot until the caller has rounded one of those it took
        # back, so both round whatever the machine's timing
        if threading.current_thread() is threading.main_thread():
            caller_rounded.set()
        elif not worker_holds.is_set():
            worker_holds.set()
            caller_rounded.wait(10)
        rounded_on.add(threading.current_thread().name)
        real(pot, allocation, cents)

    monkeypatch.setattr(engine, "_round_pot", recorded)
    monkeypatch.setattr(engine, "PARALLEL_LINES", 0)
    monkeypatch.setattr(engine.os, "cpu_count", lambda: 2)
    pipelined = apportion(inputs)
    assert len(alone.pots) >= 4 and len(rounded_on) == 2  # the worker and the caller
    for column in ("pot", "origin", "component", "segment", "kwh", "ideal", "cents"):
        assert getattr(pipelined.lines, column).tolist() == getattr(alone.lines, column).tolist()
    assert pipelined.flags == alone.flags
    assert pipelined.residual_kwh.tolist() == alone.residual_kwh.tolist()
    assert pipelined.loss_rate.tolist() == alone.loss_rate.tolist()


def test_a_pipelined_run_reports_the_first_failing_pot(monkeypatch: pytest.MonkeyPatch) -> None:
    # pots 1 and 3 fail to round (a fault injected where valid inputs cannot reach): the
    # error is pot 1's, whichever thread rounded which pot
    real = engine._round_pot

    def failing(pot, allocation, cents=None):  # type: ignore[no-untyped-def]
        if pot.index in (1, 3):
            raise ConservationError(f"pot {pot.index} injected")
        real(pot, allocation, cents)

    monkeypatch.setattr(engine, "_round_pot", failing)
    monkeypatch.setattr(engine, "PARALLEL_LINES", 0)
    monkeypatch.setattr(engine.os, "cpu_count", lambda: 2)
    with pytest.raises(ConservationError, match="pot 1 injected"):
        apportion(_tou_inputs())


def test_rounding_of_weights_times_a_scale_is_the_rounding_of_their_products() -> None:
    # a block spread by a key hands the rounding its weights and the cents per weight; the
    # cents are those of the products, line for line (on and off the block boundaries)
    rng = np.random.default_rng(11)
    weights = [rng.uniform(20, 200, 300_001), rng.gamma(2.0, 2.0, 170_000)]
    scales = [123_456.789 / weights[0].sum(), 98_765.4321 / weights[1].sum()]
    products = [w * s for w, s in zip(weights, scales, strict=True)]
    total = int(np.floor(sum(float(p.sum()) for p in products)))
    scaled = largest_remainder_parts(total, weights, scales=scales)
    plain = largest_remainder_parts(total, products)
    assert [c.tolist() for c in scaled] == [c.tolist() for c in plain]
    assert np.concatenate(plain).tolist() == _rounding_by_sorting(total, products)


def test_rounding_is_exact_for_shares_beyond_the_fast_rounders_range() -> None:
    # a share of 2 × 10¹¹ cents puts its grid value past 2⁵¹: its block is rounded by rint
    rng = np.random.default_rng(12)
    ideal = rng.uniform(0, 1000, 400_000)
    ideal[[5, 200_000, 399_999]] = rng.uniform(2e11, 3e11, 3)
    total = int(np.floor(np.rint(ideal * 16_384).sum() / 16_384))
    cents = largest_remainder(total, ideal)
    assert int(cents.sum()) == total
    assert cents.tolist() == _rounding_by_sorting(total, [ideal])


@pytest.mark.parametrize("probes", [0, 1, 3])
def test_rounding_selection_is_exact_when_its_guesses_do_not_settle(
    probes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # after the allowed counts the keys left inside the bracket are selected from
    monkeypatch.setattr(rounding, "SELECT_PROBES", probes)
    rng = np.random.default_rng(13)
    ideal = rng.integers(0, 500, 300_000) + rng.beta(0.3, 8.0, 300_000)
    total = int(np.floor(np.rint(ideal * 16_384).sum() / 16_384)) - 1234
    assert largest_remainder(total, ideal).tolist() == _rounding_by_sorting(total, [ideal])


@pytest.mark.parametrize("shape", ["spread", "few remainders", "almost whole", "wide shares"])
def test_rounding_is_exact_whatever_the_guessed_threshold(
    shape: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a large pot's cents are written in the grid pass with a guessed threshold, then the
    # lines between the guess and the exact threshold move by a cent: too high, too low,
    # or with no cent owed at all, the lines are those the exact selection picks
    rng = np.random.default_rng(14)
    lines = 200_000
    if shape == "spread":
        ideal = rng.gamma(2.0, 150.0, lines)
    elif shape == "few remainders":
        ideal = rng.integers(0, 500, lines) + rng.choice([0.25, 0.5, 0.75], lines)
    elif shape == "almost whole":  # remainders of a few grid units: no cent left over
        ideal = rng.integers(0, 500, lines) + np.where(np.arange(lines) % 1000, 0.0, 1e-4)
    else:
        ideal = rng.uniform(0, 1000, lines)
        ideal[[7, 150_000]] = [2.5e11, -3.25]  # rint's blocks: past 2⁵¹ grid units, < 0
    parts = [ideal[:70_000], ideal[70_000:]]
    exact = int(np.floor(np.rint(ideal * 16_384).sum() / 16_384))
    for total in (exact, exact - 30_000):
        expected = _rounding_by_sorting(total, parts)
        for guess in (0, 1, 5000, 16_382, 16_383):
            monkeypatch.setattr(rounding_pass, "_guess", lambda sample, guess=guess: guess)
            cents = np.concatenate(largest_remainder_parts(total, parts))
            assert cents.tolist() == expected, (total, guess)


def test_large_arrays_start_on_a_huge_page() -> None:
    for shape, dtype in (((3, 1_000_000, 1), np.float64), (5_000_000, np.uint16), (10, np.int64)):
        made = arrays.empty(shape, dtype)
        assert made.shape == (shape if isinstance(shape, tuple) else (shape,))
        assert made.dtype == dtype and made.flags.c_contiguous and made.flags.writeable
        if made.nbytes >= arrays.ALIGN_FROM:
            assert made.ctypes.data % arrays.HUGE_PAGE == 0
    assert not arrays.zeros((2_000_000,)).any()


def test_a_flat_trees_index_arrays_count_up_without_being_written() -> None:
    kind = np.full(1002, NodeKind.UNIT, dtype=np.int8)
    kind[0], kind[1] = NodeKind.MAIN, NodeKind.COMMON
    parent = np.zeros(1002, dtype=np.int64)
    parent[0] = -1
    shape = TreeShape.build(kind, parent, np.ones(1002))
    assert shape.participant.tolist() == list(range(2, 1002))
    assert shape.members(0).tolist() == list(range(1000)) and shape.members(5).size == 0
    assert shape.participant_of[[0, 1, 2, 1001]].tolist() == [-1, -1, 0, 999]
    with pytest.raises(ValueError, match="read-only"):
        shape.participant[0] = 7
