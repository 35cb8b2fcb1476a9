"""Bench: the monthly close of one site on PostgreSQL against a floor measured alongside.

A site of N units (2,500 and 10,000; ``--quick``: 250 and 1,000): one main meter (usage
key, 5 % loss cap, × 100 CT), one common meter (area key, mandatory), N unit meters each
with a unit and one tenant in since 2026-01-01, one flat tariff; a month (2026-11-01 …
2026-12-01, Asia/Shanghai) of daily ``energy_import`` points at every local midnight for
every meter (primary-side; the main ≈ Σ units × 1.03 + common, so the residual is a loss
under the cap). The site file is imported into a PostgreSQL registry and the points written
to the series store, for each store: the SQLite file store and influxd (both started by
the bench, with PostgreSQL, on 127.0.0.1 in a temporary directory, stopped at the end).

Timed, alternating in each round (medians over the rounds; the machine is shared):

- ``close_s``: :func:`cloud.apportion.close.close_period` end to end in a transaction that
  commits — the product's close: the site from the registry, the boundary readings, the
  case, the engine, the run and its lines stored (whatever ``create_run`` stores);
- the phase split (informative), the same pieces called in sequence in one committed
  transaction: ``site`` (``stored_site`` + ``load_drivers``), ``read``
  (``boundary_readings``), ``inputs`` (``case_data`` + ``case_from_data`` +
  ``to_engine_inputs``), ``engine`` (``apportion``), ``statements`` (``build_statements``;
  ``statements_in_close`` counts the statement drafts the close stored), ``create_run`` (the
  canonical form and the case as stored, the engine again, the line records, the statements
  and the tree's balances, the run's insert and the COPY of lines and statement drafts),
  ``commit``; ``store`` is ``create_run`` − ``engine``; with the cyclic garbage collector
  paused, as in ``close_period``;
- ``floor_s``: fetching the same points (one ``raw_points`` over the period's midnights for
  every meter: the store's smallest query set returning exactly the points the close read)
  + the engine on the close's own inputs + a COPY of the close's lines into a scratch table
  with the columns and indexes of ``apportion_lines`` (no foreign keys), committed.

Between timings the site's runs and lines are deleted (untimed), so every close is a first
close of the period, and nothing of the previous timing is kept alive (``gc.collect()``
before each: with the previous close still alive, later rounds ran up to 40 % slower).
Goals, per store: ``ratio`` = close ÷ floor at the larger size ≤ 2, ``scale`` = close at
the larger size ÷ close at the smaller ≤ 5 (4 × the units). Informative, per size:
``ratio_all`` (close ÷ floor of each round) and ``close_cpu_s`` / ``floor_cpu_s`` (this
process's CPU seconds, medians; the servers' work is not in them): on a shared machine the
wall times stretch with the load, these much less.
``documents_s`` (informative, per size): a COPY of the close's own input snapshot and
statement drafts, byte for byte (``documents_mb``), into scratch tables, committed — what
the close stores beyond its lines, which the floor does not write; ``ratio_with_documents``
= close ÷ (floor + documents_s).
``pass`` covers every goal; the exit status is 0 when it holds, else 1. ``load_avg_start``
/ ``load_avg_end`` are ``os.getloadavg()`` before the first site and after the last timing.

    python bench/monthly_close.py [--quick] [--rounds N]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support.servers

from cloud.apportion.case.loading import case_from_data
from cloud.apportion.close import close_period, cyclic_gc_paused
from cloud.apportion.close_readings import boundary_readings, midnight_ns
from cloud.apportion.configuration import import_site
from cloud.apportion.drivers import load_drivers
from cloud.apportion.engine import apportion
from cloud.apportion.models import ApportionDraft
from cloud.apportion.runs import DRAFT_COLUMNS, create_run, line_records
from cloud.apportion.site import case_data, site_from_data
from cloud.apportion.site_export import stored_site
from cloud.apportion.statement import build_statements
from cloud.registry.db import open_registry
from cloud.series.base import SeriesPoint, SeriesStore
from cloud.series.influx import InfluxSeriesStore
from cloud.series.sqlite import SqliteSeriesStore
from tests.support import servers

ZONE = "Asia/Shanghai"
START, END = date(2026, 11, 1), date(2026, 12, 1)
QUANTITY = "energy_import"
PRICE = Decimal("0.60")
GOAL_RATIO, GOAL_SCALE = 2.0, 5.0


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def site_file(n: int) -> dict[str, Any]:
    """The site file's sections for ``n`` units (ids are global: prefixed by the size)."""
    s = f"S{n}"
    units = [f"{s}-A{i:05d}" for i in range(n)]
    return {
        "site": s,
        "name": f"Bench site of {n} units",
        "timezone": ZONE,
        "registers": ["total"],
        "units": [{"id": u, "area": 30 + i % 70} for i, u in enumerate(units)],
        "meters": [{"id": f"{s}-M0", "multiplier": 100}, {"id": f"{s}-C1"}]
        + [{"id": f"{s}-E{i:05d}"} for i in range(n)],
        "tree": [
            {
                "id": f"{s}-MAIN",
                "kind": "main",
                "meter": f"{s}-M0",
                "rule": {"basis": "usage", "loss_cap": 0.05},
            },
            {
                "id": f"{s}-LIFT",
                "kind": "common",
                "parent": f"{s}-MAIN",
                "meter": f"{s}-C1",
                "rule": {"basis": "area", "common_type": "mandatory"},
            },
        ]
        + [
            {"id": u, "kind": "unit", "parent": f"{s}-MAIN", "meter": f"{s}-E{i:05d}"}
            for i, u in enumerate(units)
        ],
        "occupancy": {
            u: [{"tenant": f"{s}-T{i:05d}", "from": date(2026, 1, 1)}] for i, u in enumerate(units)
        },
        "tariffs": [{"id": f"{s}-flat", "kind": "flat", "from": date(2026, 1, 1), "price": PRICE}],
    }


def readings(n: int, seed: int = 11) -> tuple[list[SeriesPoint], dict[str, Any]]:
    """Daily primary-side points at every local midnight of [START, END] and the bill."""
    s = f"S{n}"
    rng = np.random.default_rng(seed)
    days = (END - START).days
    daily = rng.gamma(2.0, 2.0, size=(n, days)).round(2)
    units = np.empty((n, days + 1))
    units[:, 0] = rng.uniform(0, 50_000, size=n).round(2)
    units[:, 1:] = units[:, :1] + np.cumsum(daily, axis=1)
    common_daily = np.full(days, round(0.01 * n, 2))
    main_daily = daily.sum(axis=0) * 1.03 + common_daily
    common = np.concatenate([[100.0], 100.0 + np.cumsum(common_daily)])
    main = np.concatenate([[100_000.0], 100_000.0 + np.cumsum(main_daily)]).round(0)
    stamps = [midnight_ns(START + timedelta(days=d), ZoneInfo(ZONE)) for d in range(days + 1)]
    series = {f"{s}-M0": main, f"{s}-C1": common}
    series.update({f"{s}-E{i:05d}": units[i] for i in range(n)})
    points = [
        SeriesPoint(s, meter, QUANTITY, t, float(v), "good", "kWh")
        for meter, values in series.items()
        for t, v in zip(stamps, values.tolist(), strict=True)
    ]
    amount = (Decimal(str(main[-1] - main[0])) * PRICE).quantize(Decimal("0.01"))
    return points, {"invoice": f"SGCC-{s}-2026-11", "amounts": {"total": amount}}


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def clean(sessions: sessionmaker[Session], site_id: str) -> None:
    """Delete the site's runs, lines and statements (untimed), so the next close is a first."""
    with sessions.begin() as s:
        runs = "SELECT id FROM apportion_runs WHERE site_id = :s"
        s.execute(
            text(f"DELETE FROM apportion_statements WHERE run_id IN ({runs})"), {"s": site_id}
        )
        s.execute(text(f"DELETE FROM apportion_lines WHERE run_id IN ({runs})"), {"s": site_id})
        s.execute(
            text(f"DELETE FROM apportion_statement_drafts WHERE run_id IN ({runs})"),
            {"s": site_id},
        )
        s.execute(text("DELETE FROM apportion_runs WHERE site_id = :s"), {"s": site_id})


def close_once(sessions: sessionmaker[Session], store: SeriesStore, site_id: str, bill) -> Any:
    with sessions.begin() as s:
        closed = close_period(
            s, store, site_id=site_id, start=START, end=END, bill=bill, by="bench"
        )
        statements = s.query(ApportionDraft).filter_by(run_id=closed.run.id).count()
    return closed, statements


def phases(sessions: sessionmaker[Session], store: SeriesStore, site_id: str, bill) -> dict:
    """The close's pieces in sequence, each timed, in one committed transaction."""
    t: dict[str, float] = {}
    with sessions() as s, cyclic_gc_paused():  # as close_period runs
        with s.begin():
            t["site"], site = timed(
                lambda: (
                    stored_site(s, site_id, cross_checks=False),
                    load_drivers(s, site_id, START, END),
                )[0]
            )
            t["read"], (found, _interp, _missing) = timed(
                lambda: boundary_readings(store, site, START, END)
            )

            def inputs():
                data = case_data(
                    site.case_sections(), START, END, readings=found, bill=bill, drivers={}
                )
                case = case_from_data(data, f"close of site {site_id}")
                return case, case.to_engine_inputs()

            t["inputs"], (case, engine_inputs) = timed(inputs)
            t["engine"], result = timed(lambda: apportion(engine_inputs))
            t["statements"], statements = timed(lambda: build_statements(case, result))
            t["create_run"], _run = timed(lambda: create_run(s, case, by="bench"))
            t0 = time.perf_counter()
        t["commit"] = time.perf_counter() - t0
    t["store"] = t["create_run"] - t["engine"]
    return {"times": t, "statements": len(statements), "lines": len(result.lines)}


class Floor:
    """Fetch the same points + the engine on the close's inputs + COPY of its lines."""

    def __init__(self, dsn: str) -> None:
        import psycopg

        self.conn = psycopg.connect(dsn)
        with self.conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS bench_lines")
            cur.execute("CREATE TABLE bench_lines (LIKE apportion_lines INCLUDING ALL)")
            cur.execute("DROP TABLE IF EXISTS bench_snapshots")
            cur.execute("CREATE TABLE bench_snapshots (id text PRIMARY KEY, inputs text)")
            cur.execute("DROP TABLE IF EXISTS bench_drafts")
            cur.execute("CREATE TABLE bench_drafts (LIKE apportion_statement_drafts INCLUDING ALL)")
            cur.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name = 'apportion_lines' ORDER BY ordinal_position"
            )
            self.columns = [r[0] for r in cur.fetchall()]
        self.conn.commit()

    def rows(self, result) -> list[tuple]:
        """The lines as rows of apportion_lines (built before the clock)."""
        out = []
        for n, r in enumerate(line_records(result)):
            row = {
                "run_id": "00000000-0000-0000-0000-000000000000",
                "line_no": n,
                "kind": r.kind,
                "adjusts_run_id": None,
                "register": r.register,
                "tariff": r.tariff,
                "unit": r.unit,
                "party": r.party,
                "from_date": r.start,
                "to_date": r.end,
                "component": r.component,
                "origin": r.origin,
                "kwh": r.kwh,
                "cents": r.cents,
            }
            out.append(tuple(row[c] for c in self.columns))
        return out

    def documents(self, run_id: str) -> tuple[tuple, list[tuple]]:
        """The close's stored documents, read back (untimed): its input snapshot and its
        statement drafts, as the rows a COPY writes."""
        with self.conn.cursor() as cur:
            cur.execute("SELECT id, inputs FROM apportion_runs WHERE id = %s", (run_id,))
            snapshot = cur.fetchone()
            cur.execute(
                f"SELECT {', '.join(DRAFT_COLUMNS)} FROM apportion_statement_drafts"
                " WHERE run_id = %s ORDER BY position",
                (run_id,),
            )
            drafts = cur.fetchall()
        self.conn.commit()
        return snapshot, drafts

    def store_documents(self, snapshot: tuple, drafts: list[tuple]) -> float:
        """Seconds to COPY the same input snapshot and statement drafts, byte for byte, into
        scratch tables, committed: the storing of what the close keeps beyond its lines
        (informative; not part of the floor)."""
        with self.conn.cursor() as cur:
            cur.execute("TRUNCATE bench_snapshots, bench_drafts")
        self.conn.commit()
        t0 = time.perf_counter()
        with self.conn.cursor() as cur:
            with cur.copy("COPY bench_snapshots (id, inputs) FROM STDIN") as cp:
                cp.write_row(snapshot)
            with cur.copy(f"COPY bench_drafts ({', '.join(DRAFT_COLUMNS)}) FROM STDIN") as cp:
                for row in drafts:
                    cp.write_row(row)
        self.conn.commit()
        return time.perf_counter() - t0

    def run(self, store: SeriesStore, site: str, meters: list[str], engine_inputs, rows) -> dict:
        with self.conn.cursor() as cur:
            cur.execute("TRUNCATE bench_lines")
        self.conn.commit()
        first = midnight_ns(START, ZoneInfo(ZONE))
        last = midnight_ns(END, ZoneInfo(ZONE))
        t: dict[str, float] = {}
        t["fetch"], got = timed(
            lambda: store.raw_points(meters, QUANTITY, first, last + 1, site=site)
        )
        t["engine"], _ = timed(lambda: apportion(engine_inputs))

        def copy() -> None:
            sql = f"COPY bench_lines ({', '.join(self.columns)}) FROM STDIN"
            with self.conn.cursor() as cur, cur.copy(sql) as cp:
                for row in rows:
                    cp.write_row(row)
            self.conn.commit()

        t["copy"], _ = timed(copy)
        return {"times": t, "points": int(got[0].size)}

    def close(self) -> None:
        self.conn.close()


def bench_size(
    sessions: sessionmaker[Session],
    store: SeriesStore,
    floor: Floor,
    n: int,
    rounds: int,
    label: str,
) -> dict[str, Any]:
    raw = site_file(n)
    site_id = raw["site"]
    with sessions.begin() as s:
        if (
            s.execute(
                text("SELECT 1 FROM site_settings WHERE site_id = :s"), {"s": site_id}
            ).first()
            is None
        ):
            t0 = time.perf_counter()
            import_site(s, site_from_data(raw), by="bench")
            print(f"  imported site {site_id} in {time.perf_counter() - t0:.1f} s")
    points, bill = readings(n)
    t0 = time.perf_counter()
    for i in range(0, len(points), 50_000):
        store.write(points[i : i + 50_000])
    print(f"  wrote {len(points):,} points to {label} in {time.perf_counter() - t0:.1f} s")
    meters = sorted(m["id"] for m in raw["meters"])
    clean(sessions, site_id)
    close_times, floor_times, floor_parts = [], [], []
    close_cpu, floor_cpu = [], []  # this process's CPU seconds (not the servers')
    documents_times: list[float] = []
    engine_inputs = rows = phase_run = documents = None
    statements_in_close = 0
    for r in range(rounds):
        gc.collect()  # each timing starts from the same heap: nothing of the last one alive
        c0 = time.process_time()
        dt, (closed, statements) = timed(lambda: close_once(sessions, store, site_id, bill))
        close_cpu.append(time.process_time() - c0)
        close_times.append(dt)
        if r == 0:  # the floor works on the close's own inputs and lines
            statements_in_close = statements
            engine_inputs = closed.case.to_engine_inputs()
            rows = floor.rows(closed.result)
            documents = floor.documents(closed.run.id)
        clean(sessions, site_id)
        del closed
        if r == 0:
            gc.collect()
            phase_run = phases(sessions, store, site_id, bill)  # once: the split is informative
            clean(sessions, site_id)
        gc.collect()
        c0 = time.process_time()
        f = floor.run(store, site_id, meters, engine_inputs, rows)
        floor_cpu.append(time.process_time() - c0)
        assert f["points"] == len(points), (f["points"], len(points))
        floor_parts.append(f["times"])
        floor_times.append(sum(f["times"].values()))
        gc.collect()
        documents_times.append(floor.store_documents(*documents))
    med = statistics.median
    close_s, floor_s = med(close_times), med(floor_times)
    split = {k: round(v, 4) for k, v in phase_run["times"].items()}
    floor_split = {k: round(med(p[k] for p in floor_parts), 4) for k in floor_parts[0]}
    print(
        f"  {n:,} units: close {close_s:.2f} s, floor {floor_s:.2f} s → "
        f"{close_s / floor_s:.2f}; phases {split}; floor {floor_split}; "
        f"storing the snapshot and statement drafts alone {med(documents_times):.2f} s"
    )
    return {
        "units": n,
        "points": len(points),
        "lines": len(rows),
        "statements_built": phase_run["statements"],
        "statements_in_close": statements_in_close,
        "close_s": round(close_s, 3),
        "close_all_s": [round(x, 3) for x in close_times],
        "floor_s": round(floor_s, 3),
        "ratio": round(close_s / floor_s, 2),
        "ratio_all": [round(c / f, 2) for c, f in zip(close_times, floor_times, strict=True)],
        "documents_s": round(med(documents_times), 3),
        "documents_mb": round(
            (len(documents[0][1].encode()) + sum(len(d[4].encode()) for d in documents[1])) / 1e6,
            1,
        ),
        "ratio_with_documents": round(close_s / (floor_s + med(documents_times)), 2),
        "close_cpu_s": round(med(close_cpu), 3),
        "floor_cpu_s": round(med(floor_cpu), 3),
        "phases_s": split,
        "floor_parts_s": floor_split,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="250 and 1,000 units, 2 rounds")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--stores", default="sqlite,influx")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on a kill too
    sizes = (250, 1_000) if args.quick else (2_500, 10_000)
    rounds = args.rounds or (2 if args.quick else 3)
    backends = args.stores.split(",")
    load_start = load_avg()
    figures: dict[str, Any] = {"bench": "monthly_close", "sizes": list(sizes), "rounds": rounds}
    started: list[servers.ScriptServer] = []
    with tempfile.TemporaryDirectory(prefix="mf-bench-close-") as tmp:
        work = Path(tmp)
        try:
            for name in ("postgres", "influxdb"):
                (work / name).mkdir()
                servers.make_traversable(work / name, work)
            pg = servers.start_postgres(work / "postgres")
            started.append(pg)
            sessions = open_registry(pg.url)
            floor = Floor(pg.dsn)
            stores: dict[str, SeriesStore] = {}
            if "sqlite" in backends:
                stores["sqlite"] = SqliteSeriesStore(work / "series.sqlite")
            if "influx" in backends:
                influx = servers.start_influxdb(work / "influxdb")
                started.append(influx)
                store = InfluxSeriesStore(influx.url, "bench")
                store.create_database()
                stores["influx"] = store
            passed = True
            for label, store in stores.items():
                print(f"{label} store:")
                by_size = [bench_size(sessions, store, floor, n, rounds, label) for n in sizes]
                small, large = by_size
                ratio = large["close_s"] / large["floor_s"]
                scale = large["close_s"] / small["close_s"]
                met = ratio <= GOAL_RATIO and scale <= GOAL_SCALE
                passed &= met
                print(
                    f"{label}: close ÷ floor at {sizes[1]:,} = {ratio:.2f} (goal ≤ {GOAL_RATIO}),"
                    f" close {sizes[1]:,} ÷ {sizes[0]:,} = {scale:.2f} (goal ≤ {GOAL_SCALE})"
                )
                figures[label] = {str(r["units"]): r for r in by_size} | {
                    "ratio": round(ratio, 2),
                    "scale": round(scale, 2),
                    "ratio_met": ratio <= GOAL_RATIO,
                    "scale_met": scale <= GOAL_SCALE,
                }
                store.close()
            floor.close()
            sessions.kw["bind"].dispose()
        finally:
            for server in reversed(started):
                servers.stop_server(server)
    load_end = load_avg()
    print(f"load average (1, 5, 15 min): {load_start} before, {load_end} after; pass: {passed}")
    figures.update(
        goals={"ratio_max": GOAL_RATIO, "scale_max": GOAL_SCALE},
        load_avg_start=load_start,
        load_avg_end=load_end,
        **{"pass": passed},
    )
    print(json.dumps(figures, default=str))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
