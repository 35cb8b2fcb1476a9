"""Pure functions of cloud.risk: features, health score, model, metrics, forecast maths —
each against values worked out by hand or by a brute-force reference."""

from __future__ import annotations

import itertools
import json
from datetime import date

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.risk import features as F
from cloud.risk.forecast import (
    calendar_offset,
    forecast,
    interval,
    kaplan_meier,
    month_ends,
    poisson_binomial,
)
from cloud.risk.model import fit, precision_at, reasons, roc_auc


def _ledger(**kw: np.ndarray) -> F.Ledger:
    empty_i = np.zeros(0, dtype=np.int64)
    base = {name: empty_i for name in F.Ledger.__dataclass_fields__}
    base["col_unpaid"] = np.zeros(0, dtype=bool)
    base["nps_score"] = np.zeros(0)
    base.update({k: np.asarray(v) for k, v in kw.items()})
    return F.Ledger(**base)


def test_longest_run_by_hand() -> None:
    flags = np.array(
        [
            [0, 1, 1, 0, 1, 1, 1, 0],
            [0, 0, 0, 0, 0, 0, 0, 0],
            [1, 1, 1, 1, 1, 1, 1, 1],
            [1, 0, 1, 0, 1, 0, 1, 1],
        ],
        dtype=bool,
    )
    assert F.longest_run(flags).tolist() == [3, 0, 8, 2]


@given(
    st.lists(st.lists(st.booleans(), min_size=1, max_size=12), min_size=1, max_size=8).filter(
        lambda rows: len({len(r) for r in rows}) == 1
    )
)
@settings(max_examples=100, deadline=None)
def test_longest_run_matches_a_loop(rows: list[list[bool]]) -> None:
    expected = [max((len(list(g)) for k, g in itertools.groupby(r) if k), default=0) for r in rows]
    assert F.longest_run(np.array(rows)).tolist() == expected


def test_group_median_by_hand() -> None:
    values = np.array([1.0, 5.0, 3.0, np.nan, 10.0, 20.0, np.nan])
    group = np.array([0, 0, 0, 0, 1, 1, 2])
    med = F.group_median(values, group)
    assert med[:4].tolist() == [3.0] * 4
    assert med[4:6].tolist() == [15.0, 15.0]
    assert np.isnan(med[6])


def test_usage_features_by_hand() -> None:
    # 90 days: 60 baseline days at 10 kWh, then 30 recent days
    flat = np.full(90, 10.0)
    cut = flat.copy()
    cut[60:] = 5.0  # recent half of baseline
    ramp = flat.copy()
    ramp[60:] = 10.0 - np.arange(30) * 0.2  # falls 0.2 kWh per day
    gone = flat.copy()
    gone[75:] = 0.1  # 15 near-zero days at the end
    daily = np.vstack([flat, cut, ramp, gone])
    out = F.usage_features(daily, np.zeros(4, dtype=np.int64))
    assert out["use_ratio"][0] == pytest.approx(0.0)
    assert out["use_ratio"][1] == pytest.approx(np.log(5.1 / 10.1))
    assert out["use_slope"][0] == pytest.approx(0.0)
    assert out["use_slope"][2] == pytest.approx(-0.2 / 10 * 30)
    assert out["zero_streak"].tolist() == [0, 0, 0, 15]
    # peer ratio: own ratio minus the group's median ratio
    median = np.median(out["use_ratio"])
    assert out["peer_ratio"] == pytest.approx(out["use_ratio"] - median)


def test_usage_features_unknown_baseline_is_nan_not_zero() -> None:
    daily = np.full((1, 90), np.nan)
    daily[0, 60:] = 4.0
    out = F.usage_features(daily, np.zeros(1, dtype=np.int64))
    assert np.isnan(out["use_ratio"][0]) and np.isnan(out["use_slope"][0])
    assert out["zero_streak"][0] == 0  # unknown days are not zero-use days


def test_ledger_features_by_hand() -> None:
    as_of = 1000
    ledger = _ledger(
        # lease 0: three invoices due, one paid 5 days late, one unpaid (due 10 days ago)
        inv_lease=[0, 0, 0, 1],
        inv_due=[900, 930, 990, 990],
        inv_paid=[900, 935, F.NEVER, 985],
        col_lease=[0, 0],
        col_step=[1, 2],
        col_day=[991, 993],
        col_unpaid=[True, True],
        tk_lease=[0, 0, 1],
        tk_opened=[950, 700, 999],
        tk_resolved=[F.NEVER, 720, 1005],
    )
    out = F.ledger_features(ledger, 2, as_of)
    assert out["late_share"].tolist() == pytest.approx([2 / 3, 0.0])
    assert out["days_late"].tolist() == pytest.approx([(0 + 5 + 10) / 3, 0.0])
    assert out["collections_stage"].tolist() == [2, 0]
    assert out["open_tickets"].tolist() == [1, 1]
    assert out["recent_tickets"].tolist() == [1, 1]


def test_health_score_by_hand() -> None:
    as_of = 1000
    ledger = _ledger(
        inv_lease=[0, 0, 0, 0],
        inv_due=[900, 930, 960, 990],
        inv_paid=[900, 930, 970, 990],
        col_lease=[0],
        col_step=[3],
        col_day=[967],
        col_unpaid=[False],
        tk_lease=[0],
        tk_opened=[980],
        tk_resolved=[F.NEVER],
        act_lease=[0, 1, 1, 1, 1],
        act_day=[950, 900, 910, 920, 930],
        nps_lease=[0, 0],
        nps_day=[800, 950],
        nps_score=[9, 6],
    )
    comps = F.health_components(ledger, 2, as_of)
    # lease 0: 1 of 4 late → 75; stage counts only unpaid invoices → 0 off
    assert comps["payment"].tolist() == [75.0, 100.0]
    assert comps["repair"].tolist() == [100 - 20 - 10, 100.0]
    assert comps["activity"].tolist() == pytest.approx([100 / 3, 100.0])
    assert comps["deviation"].tolist() == [75.0, 100.0]
    assert comps["nps"].tolist() == [60.0, 10.0 * F.NPS_UNKNOWN]
    score = F.health_score(comps)
    expected0 = 0.30 * 75 + 0.25 * 70 + 0.20 * 100 / 3 + 0.15 * 75 + 0.10 * 60
    assert score[0] == pytest.approx(expected0)
    assert F.health_band(np.array([85.0, 84.6, 84.4, 70.0, 69.4])).tolist() == [
        "green",
        "green",
        "yellow",
        "yellow",
        "red",
    ]


def test_model_predict_equals_scikit_learn_and_reasons_name_the_driver() -> None:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    rng = np.random.default_rng(3)
    n = 600
    x = rng.normal(size=(n, len(F.FEATURES)))
    logit = -1 + 2.0 * x[:, F.FEATURES.index("late_share")] - 1.5 * x[:, 0]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    x[rng.random(x.shape) < 0.02] = np.nan
    model = fit(x, y)
    filled = np.clip(np.where(np.isnan(x), model.mean, x), model.lo, model.hi)
    z = (filled - model.mean) / model.scale
    ref = CalibratedClassifierCV(
        LogisticRegression(max_iter=2000),
        method="sigmoid",
        cv=StratifiedKFold(5, shuffle=True, random_state=0),
        ensemble=False,
    ).fit(z, y)
    assert model.predict(x) == pytest.approx(ref.predict_proba(z)[:, 1], abs=1e-9)
    assert roc_auc(y, model.predict(x)) > 0.75
    worst = int(np.argmax(model.predict(x)))
    why = reasons(model, x)
    assert {r["feature"] for r in why[worst]} & {"late_share", "use_ratio"}
    # structured, JSON-safe, the lease's own value rounded: what a score stores
    for i, row in enumerate(why):
        assert len(row) <= 3
        for r in row:
            assert set(r) == {"feature", "value"} and type(r["value"]) is float
            j = F.FEATURES.index(r["feature"])
            assert r["value"] == pytest.approx(x[i, j], abs=5e-5)
    assert json.loads(json.dumps(why, allow_nan=False)) == why


def test_auc_and_precision_by_hand() -> None:
    y = np.array([1, 0, 1, 0, 0])
    s = np.array([0.9, 0.8, 0.7, 0.1, 0.1])
    # pairs (pos, neg): (.9,.8)(.9,.1)(.9,.1)(.7,.8)(.7,.1)(.7,.1) → 5 of 6
    assert roc_auc(y, s) == pytest.approx(5 / 6)
    assert roc_auc(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert precision_at(y, s, 0.2) == 1.0
    assert precision_at(y, s, 0.4) == 0.5


def test_kaplan_meier_by_hand() -> None:
    # durations 2, 3 (censored), 5, 5: S(0..1)=1, S(2)=3/4, S(4)=3/4, S(5)=3/4·(1−2/2)=0
    s = kaplan_meier(np.array([2, 3, 5, 5]), np.array([True, False, True, True]), 6)
    assert s.tolist() == pytest.approx([1, 1, 0.75, 0.75, 0.75, 0.0, 0.0])
    assert kaplan_meier(np.zeros(0), np.zeros(0, bool), 3).tolist() == [1, 1, 1, 1]


@given(st.lists(st.floats(0, 1), min_size=0, max_size=7))
@settings(max_examples=60, deadline=None)
def test_poisson_binomial_matches_enumeration(p: list[float]) -> None:
    expected = np.zeros(len(p) + 1)
    for outcome in itertools.product([0, 1], repeat=len(p)):
        expected[sum(outcome)] += np.prod(
            [q if o else 1 - q for q, o in zip(p, outcome, strict=True)]
        )
    assert poisson_binomial(np.array(p)) == pytest.approx(expected, abs=1e-12)


def test_interval_holds_the_central_ninety_percent() -> None:
    p = np.full(100, 0.3)
    low, high = interval(p)
    dist = poisson_binomial(p)
    assert dist[low : high + 1].sum() >= 0.9
    assert dist[:low].sum() <= 0.05 and dist[high + 1 :].sum() <= 0.05
    assert low < 30 < high


def test_forecast_by_hand() -> None:
    as_of = date(2026, 3, 1)
    ends = month_ends(as_of, 3)
    assert ends == [date(2026, 3, 31), date(2026, 4, 30), date(2026, 5, 31)]
    never = np.array([F.NEVER])
    # no re-letting (S = 1): the rule, counted cumulatively
    rows = forecast(
        as_of,
        vacant_building=["A"],
        vacant_since=np.array([as_of.toordinal() - 10]),
        vacant_until=never,
        lease_building=["A", "A", "B"],
        lease_end=np.array(
            [
                date(2026, 3, 15).toordinal(),
                date(2026, 5, 1).toordinal(),
                date(2026, 4, 1).toordinal(),
            ]
        ),
        lease_p=np.array([0.5, 0.25, 0.8]),
        survival=np.ones(401),
        buildings=["A", "B"],
        months=3,
    )
    got = {(r.building, r.on): r.expected for r in rows}
    assert got[("A", ends[0])] == pytest.approx(1.5)
    assert got[("A", ends[1])] == pytest.approx(1.5)
    assert got[("A", ends[2])] == pytest.approx(1.75)
    assert got[("B", ends[0])] == 0 and got[("B", ends[1])] == pytest.approx(0.8)
    # every vacancy lasts exactly one calendar month (31): today's vacancy (since Feb 19) is
    # let on Mar 19; a lease ending Mar 15 leaves its unit vacant on Mar 31 with its
    # probability, let by Apr 15
    surv = np.zeros(31 * 60 + 1)
    surv[:31] = 1.0
    rows = forecast(
        as_of,
        vacant_building=["A"],
        vacant_since=np.array([date(2026, 2, 19).toordinal()]),
        vacant_until=never,
        lease_building=["A"],
        lease_end=np.array([date(2026, 3, 15).toordinal()]),
        lease_p=np.array([0.4]),
        survival=surv,
        buildings=["A"],
        months=2,
    )
    assert [(r.current, r.expected) for r in rows] == [(1, 0.4), (1, 0.0)]
    # a lease already signed for the vacant unit: vacant exactly until it starts
    rows = forecast(
        as_of,
        vacant_building=["A"],
        vacant_since=np.array([as_of.toordinal() - 10]),
        vacant_until=np.array([date(2026, 4, 1).toordinal()]),
        lease_building=[],
        lease_end=np.zeros(0, np.int64),
        lease_p=np.zeros(0),
        survival=np.ones(61),
        buildings=["A"],
        months=2,
    )
    assert [r.expected for r in rows] == [1.0, 0.0]


def test_calendar_offset_by_hand() -> None:
    def c(a: date, b: date) -> int:
        return int(calendar_offset(np.array([a.toordinal()]), b.toordinal())[0])

    assert c(date(2026, 2, 1), date(2026, 3, 1)) == 31 == c(date(2026, 3, 1), date(2026, 4, 1))
    assert c(date(2026, 4, 1), date(2026, 4, 30)) == 29
    assert c(date(2026, 3, 1), date(2026, 4, 30)) == 60
    assert c(date(2026, 1, 31), date(2026, 2, 1)) == 1
    assert c(date(2026, 2, 28), date(2026, 3, 1)) == 4
    days = np.arange(date(2026, 1, 1).toordinal(), date(2027, 1, 1).toordinal())
    assert (np.diff(calendar_offset(np.full(len(days), days[0]), days)) > 0).all()
