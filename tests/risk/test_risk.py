"""Move-out risk on a simulated two-year portfolio (meterflow/scenarios/portfolio.py) written into a
real registry and series store: the time-split backtest against the health-score baseline,
the leakage test, the six-month vacancy forecast against what happened, the score job, the
risk list, the reminders it feeds and the command line.

Nothing here reads the generator's hidden state: outcomes come from the lease rows, as in
production. Figures are printed (``-s``) and written to ``test-artifacts/risk.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import get_args
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from cloud.leases.models import (
    CollectionEvent,
    Invoice,
    Lease,
    RenewalReminder,
    RepairComplaint,
    Staff,
)
from cloud.leases.reminders import send_renewal_reminders
from cloud.leases.terms import LadderAction
from cloud.notify.outbox import NotificationRow
from cloud.registry.db import open_registry
from cloud.risk import jobs
from cloud.risk.features import FEATURES, feature_matrix, health_components, health_score
from cloud.risk.forecast import load_occupancy, month_ends, realised_vacancies
from cloud.risk.loader import RUNGS, load_inputs
from cloud.risk.model import fit, roc_auc
from cloud.risk.models import TenantSurvey
from cloud.risk.training import FORECAST_LEAD_DAYS, backtest, backtest_examples, train
from cloud.series.base import SeriesPoint
from cloud.series.sqlite import SqliteSeriesStore
from meterflow.scenarios.portfolio import generate_portfolio
from meterflow.scenarios.portfolio_plan import PortfolioSpec

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SPEC = PortfolioSpec()
METERFLOW = str(Path(sys.executable).with_name("meterflow"))


def _record(name: str, figures: dict) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "risk.json"
    doc = json.loads(path.read_text()) if path.exists() else {}
    doc[name] = figures
    path.write_text(json.dumps(doc, indent=1, default=str))
    print(f"\n{name}: {json.dumps(figures, default=str)}")


class Portfolio:
    def __init__(self, root: Path, spec: PortfolioSpec) -> None:
        self.root = root
        self.spec = spec
        url = f"sqlite:///{root / 'registry.sqlite'}"
        self.sessions: sessionmaker[Session] = open_registry(url)
        self.store = SqliteSeriesStore(root / "series.sqlite")
        self.summary = generate_portfolio(self.sessions, self.store, spec)
        self.start = spec.start
        self.now = self.summary.now


@pytest.fixture(scope="module")
def portfolio(tmp_path_factory: pytest.TempPathFactory) -> Portfolio:
    return Portfolio(tmp_path_factory.mktemp("portfolio"), SPEC)


@pytest.fixture()
def small_portfolio(tmp_path: Path) -> Portfolio:
    """A fresh small copy for tests that change data."""
    return Portfolio(tmp_path, replace(SPEC, buildings=2, units_per_building=40, seed=11))


def test_backtest_the_model_beats_the_health_score(portfolio: Portfolio) -> None:
    split = portfolio.start + timedelta(days=365)
    with portfolio.sessions() as session:
        result = backtest(
            session,
            portfolio.store,
            history_from=portfolio.start,
            split=split,
            history_to=portfolio.now,
        )
    result.pop("model_params")
    _record("backtest", result)
    model, base = result["model"], result["baseline"]
    assert result["train"]["leases"] >= 150 and result["test"]["leases"] >= 150
    assert 0.15 < model["base_rate"] < 0.5
    assert model["roc_auc"] > base["roc_auc"] + 0.05, (model, base)
    assert model["roc_auc"] > 0.75
    assert model["precision_top10"] > 2 * model["base_rate"]
    # calibrated: predicted and observed rates agree within 0.1 overall
    predicted = sum(b["predicted"] * b["n"] for b in model["calibration"]) / model["n"]
    assert abs(predicted - model["base_rate"]) < 0.1


def test_the_model_learns_nothing_from_shuffled_outcomes(portfolio: Portfolio) -> None:
    """A placebo: the same pipeline fitted on shuffled training outcomes ranks the test
    leases no better than chance — what the model finds comes from the features."""
    split = portfolio.start + timedelta(days=365)
    with portfolio.sessions() as session:
        tr, te = backtest_examples(
            session,
            portfolio.store,
            history_from=portfolio.start,
            split=split,
            history_to=portfolio.now,
        )
    x_tr, _, y_tr = tr.matrices()
    x_te, _, y_te = te.matrices()
    aucs = [
        roc_auc(y_te, fit(x_tr, np.random.default_rng(k).permutation(y_tr)).predict(x_te))
        for k in range(5)
    ]
    real = roc_auc(y_te, fit(x_tr, y_tr).predict(x_te))
    _record("placebo", {"shuffled_auc_median": float(np.median(aucs)), "real_auc": real})
    assert abs(float(np.median(aucs)) - 0.5) < 0.12
    assert real > float(np.median(aucs)) + 0.15


def _scores_at(
    p: Portfolio, as_of: date
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, dict]:
    with p.sessions() as session:
        model, _ = train(session, p.store, history_from=p.start, as_of=as_of)
        inputs = load_inputs(session, p.store, as_of)
    x = feature_matrix(inputs.daily, inputs.ledger, inputs.facts, inputs.as_of_day)
    health = health_score(health_components(inputs.ledger, len(inputs.lease_ids), inputs.as_of_day))
    return inputs.lease_ids, x, health, model.predict(x), model.to_json()


def _shift_the_future(p: Portfolio, cutoff: date) -> dict[str, int]:
    """Change everything dated on or after the cutoff, keeping it after the cutoff."""
    rng = np.random.default_rng(5)
    changed = {}
    with p.sessions.begin() as session:
        # invoices paid after the cutoff: paid later still; unpaid ones paid; and the reverse
        n = session.execute(
            update(Invoice)
            .where(Invoice.paid_on >= cutoff)
            .values(paid_on=None, paid_cents=0, status="open")
        ).rowcount
        changed["invoices_unpaid"] = n
        n = session.execute(
            update(Invoice)
            .where(Invoice.issued_on >= cutoff)
            .values(total_cents=Invoice.total_cents * 2)
        ).rowcount
        changed["invoices_reissued"] = n
        # outcomes after the cutoff flip: renewals become move-outs and the reverse
        late = session.scalars(
            select(Lease).where(
                Lease.ended_on >= cutoff + timedelta(days=1), Lease.start_on < cutoff
            )
        ).all()
        for lease in late:
            lease.ended_on = lease.ended_on + timedelta(days=3)
        changed["leases_ending_later"] = len(late)
        session.execute(update(Lease).where(Lease.signed_on >= cutoff).values(renewed_from_id=None))
        tenant, unit = session.execute(
            select(Lease.tenant_id, Lease.unit_id).where(Lease.start_on < cutoff)
        ).first()
        session.add_all(
            [
                RepairComplaint(
                    tenant_id=tenant,
                    unit_id=unit,
                    opened_on=cutoff + timedelta(days=k),
                    summary="later",
                    category="hvac",
                )
                for k in range(5)
            ]
        )
        session.add(TenantSurvey(tenant_id=tenant, answered_on=cutoff, score=0))
        session.execute(
            update(RepairComplaint)
            .where(RepairComplaint.resolved_on >= cutoff)
            .values(resolved_on=None)
        )
    # series: every point from local midnight of the cutoff on is rewritten at random
    zone = ZoneInfo(p.spec.tz)
    cut_ns = int(datetime.combine(cutoff, time(0), zone).astimezone(UTC).timestamp() * 1e9)
    rows = p.store._db.execute(
        "SELECT meter, quantity, time_ns FROM points WHERE time_ns >= ?", (cut_ns,)
    ).fetchall()
    p.store.write(
        [
            SeriesPoint(
                site=p.spec.site_id,
                meter=m,
                quantity=q,
                time_ns=t,
                value=float(rng.random() * 1e5),
                quality="good",
            )
            for m, q, t in rows
        ]
    )
    changed["points_rewritten"] = len(rows)
    return changed


def test_features_and_scores_use_nothing_after_the_cutoff(small_portfolio: Portfolio) -> None:
    p = small_portfolio
    cutoff = p.start + timedelta(days=500)
    ids, x, health, prob, params = _scores_at(p, cutoff)
    assert len(ids) > 40 and np.isfinite(prob).all()
    changed = _shift_the_future(p, cutoff)
    assert all(v > 0 for v in changed.values()), changed
    ids2, x2, health2, prob2, params2 = _scores_at(p, cutoff)
    assert ids2 == ids
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(health2, health)
    np.testing.assert_array_equal(prob2, prob)
    assert params2 == params  # the model trained at the cutoff did not change either
    # and the test can fail: the same change one week earlier moves the features
    _shift_the_future(p, cutoff - timedelta(days=7))
    _, x3, _, prob3, _ = _scores_at(p, cutoff)
    assert not np.array_equal(np.nan_to_num(x3), np.nan_to_num(x))
    assert not np.array_equal(prob3, prob)
    _record("leakage", {"cutoff": cutoff.isoformat(), "leases": len(ids), **changed})


def test_vacancy_forecast_interval_covers_what_happened(portfolio: Portfolio) -> None:
    p = portfolio
    origins = [p.start + timedelta(days=400), p.start + timedelta(days=520)]
    cells = covered = total_cells = total_covered = 0
    rows_out = []
    with p.sessions() as session:
        occ = load_occupancy(session, p.spec.site_id)
        for origin in origins:
            origin = origin.replace(day=1)
            model, _ = train(
                session, p.store, history_from=p.start, as_of=origin, lead_days=FORECAST_LEAD_DAYS
            )
            forecast = jobs.vacancy_forecast(
                session, p.store, p.spec.site_id, origin, model=(0, model)
            )
            assert month_ends(origin, 6)[-1] < p.now
            by_month: dict[date, list] = {}
            for f in forecast:
                real = realised_vacancies(occ, f.on)[f.building]
                cells += 1
                covered += f.low <= real <= f.high
                by_month.setdefault(f.on, []).append((f, real))
            for on, items in by_month.items():
                # portfolio total: sum of independent Bernoullis across buildings too
                exp = sum(f.expected for f, _ in items)
                real = sum(r for _, r in items)
                sd = np.sqrt(sum(((f.high - f.low) / 3.29) ** 2 for f, _ in items))
                total_cells += 1
                total_covered += exp - 1.645 * sd - 0.5 <= real <= exp + 1.645 * sd + 0.5
                rows_out.append(
                    {
                        "origin": origin.isoformat(),
                        "month": on.isoformat()[:7],
                        "expected": round(exp, 1),
                        "realised": real,
                    }
                )
    _record(
        "forecast",
        {
            "building_months": cells,
            "covered": covered,
            "portfolio_months": total_cells,
            "portfolio_covered": int(total_covered),
            "months": rows_out,
        },
    )
    assert covered / cells >= 0.75, (covered, cells)
    assert total_covered / total_cells >= 0.6, (total_covered, total_cells)


def test_score_job_risk_list_and_the_reminders_it_feeds(small_portfolio: Portfolio) -> None:
    p = small_portfolio
    today = p.now
    with p.sessions.begin() as session:
        jobs.train_job(session, p.store, today, now=datetime(2026, 1, 1, tzinfo=UTC))
        scores = jobs.score(session, p.store, today)
        assert jobs.store_scores(session, scores) == len(scores.lease_ids) > 40
        assert jobs.store_scores(session, scores) == len(scores.lease_ids)  # replaces
    with p.sessions() as session:
        items = jobs.risk_list(session, limit=1000)
    probs = [i["probability"] for i in items]
    assert probs == sorted(probs, reverse=True) and len(items) == len(scores.lease_ids)
    assert all(i["band"] in ("green", "yellow", "red") for i in items)
    assert any(i["reasons"] for i in items[:5])
    # reasons are stored as feature and value, worded only when shown (cloud.risk.wording)
    with p.sessions() as session:
        stored = [r for row in session.scalars(select(jobs.RiskScore)) for r in row.reasons]
    assert stored and all(
        set(r) == {"feature", "value"}
        and r["feature"] in FEATURES
        and isinstance(r["value"], float)
        for r in stored
    ), stored[:5]
    top = next(i for i in items if i["reasons"])  # the reminders get them as stored
    with p.sessions() as session:
        got = jobs.high_risk_leases(session, [top["lease_id"]], threshold=0.0)
    assert got == {top["lease_id"]: (top["probability"], top["reasons"])}
    assert isinstance(top["reasons"][0], dict)
    service = jobs.RiskListService(p.sessions)
    assert service.items(frozenset({"ELSEWHERE"})) == []
    assert service.items(frozenset({p.spec.site_id}), limit=3) == items[:3]
    assert service.items(None, site="ELSEWHERE") == []

    # a high-risk lease 120 days before its end gets the early reminder to the supervisor;
    # make one so by storing a high score for it (the reminder reads the stored scores)
    with p.sessions.begin() as session:
        lease = session.scalars(
            select(Lease)
            .where(
                Lease.status == "active",
                Lease.end_on > today + timedelta(days=100),
                Lease.end_on <= today + timedelta(days=160),
            )
            .order_by(Lease.id)
        ).first()
        assert lease is not None
        day = lease.end_on - timedelta(days=120)
        other = session.scalars(
            select(Lease).where(
                Lease.status == "active", Lease.id != lease.id, Lease.end_on == lease.end_on
            )
        ).first()
        session.execute(
            update(jobs.RiskScore).where(jobs.RiskScore.scored_on == today).values(probability=0.1)
        )
        session.execute(
            update(jobs.RiskScore)
            .where(jobs.RiskScore.lease_id == lease.id, jobs.RiskScore.scored_on == today)
            .values(probability=0.81, reasons=[{"feature": "use_ratio", "value": -0.6}, "old"])
        )
        assert jobs.high_risk_leases(session, [lease.id]) == {
            lease.id: (0.81, [{"feature": "use_ratio", "value": -0.6}, "old"])  # as stored
        }
        sent = send_renewal_reminders(session, day, at=datetime(2026, 1, 1, tzinfo=UTC))
        manager = session.get(Staff, lease.manager_id)
        risk = session.scalars(select(RenewalReminder).where(RenewalReminder.kind == "risk")).all()
        notice = session.scalars(
            select(NotificationRow).where(NotificationRow.key == f"renewal:{lease.id}:risk:120")
        ).one()
    # the supervisor reads Chinese (staff's default): the model's reasons worded, one stored
    # as words before shown as it is
    assert notice.subject.startswith(f"【退租风险】租约 {lease.id} 将于")
    assert "退租风险 81%（用量较自身 60 天基线 -45 %；old）。由 " in notice.body
    assert sent >= 1
    assert [(r.lease_id, r.offset_days, r.recipient_id, r.priority) for r in risk] == [
        (lease.id, 120, manager.supervisor_id or manager.id, True)
    ]
    assert other is None or other.id not in {r.lease_id for r in risk}


def test_command_line(small_portfolio: Portfolio) -> None:
    p = small_portfolio
    env = {**os.environ, "MF_DATA_DIR": str(p.root)}
    env.pop("MF_DB_URL", None)

    def run(*args: str) -> str:
        out = subprocess.run(
            [METERFLOW, "cloud", "risk", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    assert run("score", "--as-of", p.now.isoformat()).count('"model_version": null') == 1
    trained = json.loads(run("train", "--as-of", p.now.isoformat()))
    assert trained["version"] == 1 and trained["examples"] > 50
    scored = json.loads(run("score", "--as-of", p.now.isoformat()))
    assert scored["model_version"] == 1 and scored["leases"] > 40
    listed = json.loads(run("list", "--limit", "5"))
    assert len(listed) == 5 and listed[0]["probability"] >= listed[-1]["probability"]
    worded = [r for item in listed for r in item["reasons"]]  # in English words
    assert worded and all(isinstance(r, str) and r.isascii() for r in worded), worded
    forecast = json.loads(run("forecast", "--site", p.spec.site_id, "--as-of", p.now.isoformat()))
    assert len(forecast) == 6 * 2 and all(f["low"] <= f["high"] for f in forecast)
    bad = subprocess.run(
        [METERFLOW, "cloud", "risk", "score", "--as-of", "2026-13-01"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "--as-of '2026-13-01': expected YYYY-MM-DD" in bad.stderr


def test_sim_portfolio_command_fills_an_empty_registry_only(tmp_path: Path) -> None:
    env = {**os.environ, "MF_DATA_DIR": str(tmp_path)}
    env.pop("MF_DB_URL", None)
    args = [
        METERFLOW,
        "sim",
        "portfolio",
        "--buildings",
        "1",
        "--units-per-building",
        "10",
        "--days",
        "150",
    ]
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["units"] == 10 and summary["points"] >= 10 * 150
    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "already holds leases" in again.stderr


def test_a_collection_events_rung_is_what_it_did_whatever_the_policys_days(
    small_portfolio: Portfolio,
) -> None:
    """A ladder that hands over to legal at T+14 (or reminds twice) is read by its actions:
    reminder 1, internal task 2, call 3, escalation or legal hand-over 4 — not by the default
    ladder's days (T+14 used to read as a call)."""
    assert set(RUNGS) == set(get_args(LadderAction))
    p = small_portfolio
    as_of = p.start + timedelta(days=500)
    with p.sessions() as s:
        scored = load_inputs(s, p.store, as_of).lease_ids
    ladder = (
        (1, "reminder"),
        (5, "reminder"),
        (6, "internal_task"),
        (9, "call_task"),
        (14, "legal_handover"),
    )
    with p.sessions.begin() as s:
        invoice = s.scalars(
            select(Invoice)
            .where(
                Invoice.lease_id.in_(scored),
                Invoice.due_on < as_of - timedelta(days=30),
                Invoice.total_cents > 0,
            )
            .order_by(Invoice.id)
            .limit(1)
        ).one()
        invoice.paid_on = None  # owed at the cutoff
        theirs = select(Invoice.id).where(Invoice.lease_id == invoice.lease_id)
        for event in s.scalars(
            select(CollectionEvent).where(CollectionEvent.invoice_id.in_(theirs))
        ):
            s.delete(event)  # the lease's only events: the ladder below
        s.flush()
        for days, action in ladder:
            s.add(
                CollectionEvent(
                    invoice_id=invoice.id,
                    step=days,
                    action=action,
                    due_on=invoice.due_on,
                    happened_on=invoice.due_on + timedelta(days=days),
                    channel="",
                    recipient="",
                    outcome="sent",
                )
            )
        lease_id, due = invoice.lease_id, invoice.due_on.toordinal()
    with p.sessions() as s:
        inputs = load_inputs(s, p.store, as_of)
    mine = inputs.ledger.col_lease == inputs.lease_ids.index(lease_id)
    days = (inputs.ledger.col_day[mine] - due).tolist()
    rungs = dict(zip(days, inputs.ledger.col_step[mine].tolist(), strict=True))
    assert rungs == {1: 1, 5: 1, 6: 2, 9: 3, 14: 4}
