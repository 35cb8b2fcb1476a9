"""Move-out features and scores for 100,000 leases × 90 days of daily use, against the
time to read the same series from the store, in one run.

Setup (not timed): a simulated portfolio (meterflow/scenarios/portfolio.py) of 100 buildings × 1,070
units (≈ 100,000 running leases) with 120 days of daily register readings in the SQLite
series store and its ledger in a SQLite registry; a model trained on a small two-year
portfolio (the scoring cost does not depend on what the model learned).

Timed, alternating, three rounds each:
- floor: ``store.consumption_matrix`` of the scored leases' meters over the 90 days before
  the cutoff (exactly the series the features read);
- ours: ``cloud.risk.jobs.score`` — the loader (the same series read, plus the ledger:
  invoices, collections, tickets, activities, surveys, rents), the features, the health
  score, the calibrated probabilities and three reasons per lease.

Figure: median ours ÷ median floor, goal ≤ 2. Writing the 100,000 scores to the registry is
timed apart (``store_s``). ``--quick``: 10 buildings (10,000 leases).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from cloud.apportion.models import MeterInstallation, TreeNode  # noqa: E402
from cloud.registry.db import open_registry  # noqa: E402
from cloud.risk import jobs  # noqa: E402
from cloud.risk.loader import WINDOW_DAYS, load_inputs  # noqa: E402
from cloud.risk.models import RiskModelRow  # noqa: E402
from cloud.risk.training import train  # noqa: E402
from cloud.series.sqlite import SqliteSeriesStore  # noqa: E402
from meterflow.scenarios.portfolio import generate_portfolio  # noqa: E402
from meterflow.scenarios.portfolio_plan import PortfolioSpec  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 leases")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    buildings = 10 if args.quick else 100
    with tempfile.TemporaryDirectory(prefix="bench-risk-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        small = root / "small"
        small_sessions = open_registry(f"sqlite:///{small / 'registry.sqlite'}")
        small_store = SqliteSeriesStore(small / "series.sqlite")
        small_spec = PortfolioSpec(buildings=2, units_per_building=60, seed=3)
        small_now = generate_portfolio(small_sessions, small_store, small_spec).now
        with small_sessions() as session:
            model, info = train(
                session, small_store, history_from=small_spec.start, as_of=small_now
            )
        small_store.close()
        # ~6 % of units are vacant at "now": 1,070 units a building give ≥ 100,000 leases
        spec = PortfolioSpec(buildings=buildings, units_per_building=1070, days=120, seed=5)
        sessions = open_registry(f"sqlite:///{root / 'registry.sqlite'}")
        store = SqliteSeriesStore(root / "series.sqlite")
        summary = generate_portfolio(sessions, store, spec)
        setup_s = time.perf_counter() - t0
        as_of = summary.now
        with sessions.begin() as session:  # the model version, stored as the jobs store it
            row = RiskModelRow(
                trained_at=datetime.now(UTC),
                as_of=small_now,
                examples=info["examples"],
                params=model.to_json(),
                metrics={},
                active=True,
            )
            session.add(row)
            session.flush()
            version = row.version
        with sessions() as session:
            inputs = load_inputs(session, store, as_of)
        with sessions() as session:
            meter_of = dict(
                session.execute(
                    select(TreeNode.unit_id, MeterInstallation.meter_id).join(
                        MeterInstallation, MeterInstallation.node_id == TreeNode.id
                    )
                ).all()
            )
        meters = [meter_of[u] for u in inputs.unit_ids]
        zone = ZoneInfo(spec.tz)
        end = datetime.combine(as_of, datetime.min.time(), zone).astimezone(UTC)
        start = datetime.combine(
            as_of - timedelta(days=WINDOW_DAYS), datetime.min.time(), zone
        ).astimezone(UTC)
        floors, ours = [], []
        scores = None
        for _ in range(args.rounds):
            t = time.perf_counter()
            cm = store.consumption_matrix(
                meters, spec.quantity, start, end, "1d", spec.tz, site=spec.site_id
            )
            floors.append(time.perf_counter() - t)
            t = time.perf_counter()
            with sessions() as session:
                scores = jobs.score(session, store, as_of, model=(version, model))
            ours.append(time.perf_counter() - t)
        assert scores is not None and len(scores.lease_ids) == len(meters)
        assert cm.usage.shape == (len(meters), WINDOW_DAYS)
        t = time.perf_counter()
        with sessions.begin() as session:
            written = jobs.store_scores(session, scores)
        store_s = time.perf_counter() - t
        store.close()
    floor, mine = statistics.median(floors), statistics.median(ours)
    ratio = mine / floor
    print(
        f"{len(meters):,} leases × {WINDOW_DAYS} days: series read {floor:.2f} s (median of "
        f"{args.rounds}), features + scores {mine:.2f} s → ratio {ratio:.2f} (goal ≤ 2); "
        f"storing {written:,} scores {store_s:.2f} s; setup {setup_s:.0f} s"
    )
    print(
        json.dumps(
            {
                "bench": "risk_scoring",
                "leases": len(meters),
                "days": WINDOW_DAYS,
                "points_read": int(cm.usage.size),
                "rounds": args.rounds,
                "read_s": [round(x, 3) for x in floors],
                "score_s": [round(x, 3) for x in ours],
                "read_s_median": round(floor, 3),
                "score_s_median": round(mine, 3),
                "ratio_median": round(ratio, 3),
                "store_scores_s": round(store_s, 3),
                "high_risk": int((scores.probability >= 0.5).sum()),
                "model_examples": info["examples"],
                "goal": 2.0,
                "pass": ratio <= 2.0,
            }
        )
    )


if __name__ == "__main__":
    main()
