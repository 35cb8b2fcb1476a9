"""Bench: the monthly billing run for 100,000 leases on PostgreSQL against the floor of
bulk-inserting the same number of invoice lines with one COPY, in the same run.

The portfolio (written with COPY, not timed): one site, 100,000 units, tenants and leases
(5 % are sub-accounts billed to the lease before them, 10 % pay quarterly, 10 % have a rent
step in the middle of the month billed, 5 % were handed over mid-month), one rent-plan step
or two each, and a posted apportionment run of the month before with a utility amount for
every tenant. Timed: ``run_monthly_billing`` for 2026-03 — candidate leases, rent plans,
catch-ups, utility charges from the posted run, late fees, credits, then invoices, lines,
utility billings with COPY — in one transaction. Floor: the same number of rows COPYed
into ``invoice_lines`` (same table, keys, unique index and foreign keys, referencing the
run's invoices) right after it, in the same transaction, which is then rolled back; three
such rounds, medians of each (the machine is shared and noisy). Figure: run ÷ floor, goal
≤ 3. Then the run once more, committed, and a rerun of the period, which must bill nothing.

    python bench/lease_billing.py [--quick]      # --quick: 5,000 leases

Starts its own PostgreSQL (deploy/local/postgres.sh) on a free port and stops it at the
end. The last line printed is one JSON object with the figures: ``run_s`` and ``floor_s``
(medians), ``runs_s``/``floors_s``/``ratios`` (each round), ``ratio`` (the median of the
rounds' ratios: each run against the floor measured right after it). The machine is
shared, so ``load_avg_start`` and ``load_avg_end`` are
``os.getloadavg()`` (1, 5, 15 min) before seeding and after the rerun. ``pass`` needs the
ratio ≤ 3, the committed run billing what the timed runs billed and the rerun billing
nothing; the exit status is 0 when it holds, else 1.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from cloud.leases.billing import run_billing
from cloud.leases.jobs import run_monthly_billing
from cloud.leases.periods import BillingPeriod
from cloud.leases.utilities import PostedApportionment
from cloud.registry.db import open_registry

ROOT = Path(__file__).resolve().parents[1]
PERIOD = BillingPeriod.parse("2026-03")
T0 = datetime(2026, 2, 1, tzinfo=UTC)


def load_avg() -> list[float]:
    """The 1-, 5- and 15-minute load averages (runnable processes), rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """deploy/local/postgres.sh on a free port in ``data_dir``; stopped by :meth:`stop`."""

    def __init__(self, data_dir: Path) -> None:
        self.script, self.dir, self.port = ROOT / "deploy/local/postgres.sh", data_dir, free_port()
        data_dir.mkdir(parents=True)
        if os.geteuid() == 0:  # the server runs as the postgres user: let it walk in
            data_dir.parent.chmod(0o711)
            data_dir.chmod(0o777)
        proc = subprocess.run(
            ["bash", str(self.script), "start", str(data_dir), str(self.port)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"postgres.sh start failed:\n{proc.stdout}{proc.stderr}")
        self.url = f"postgresql+psycopg://meterflow@127.0.0.1:{self.port}/meterflow"
        self.dsn = f"postgresql://meterflow@127.0.0.1:{self.port}/meterflow"

    def stop(self) -> None:
        subprocess.run(
            ["bash", str(self.script), "stop", str(self.dir)],
            check=False,
            capture_output=True,
            timeout=60,
        )


def seed(dsn: str, n: int) -> None:
    """The portfolio, written with COPY (see the module doc)."""
    import psycopg

    run_id = str(uuid.uuid4())
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO sites (id, name, timezone) VALUES ('BENCH', 'Bench park', 'Asia/Shanghai')"
        )
        cur.execute(
            "INSERT INTO staff (id, name, channel, address) VALUES "
            "('m1', 'Manager', 'email', 'm1@bench.test')"
        )
        with cur.copy("COPY units (id, site_id, area_m2, building, floor) FROM STDIN") as cp:
            for i in range(n):
                cp.write_row((f"U{i:06d}", "BENCH", 40 + i % 60, "ABCDEFGHIJ"[i % 10], str(i % 30)))
        with cur.copy("COPY tenants (id, name, channel, address) FROM STDIN") as cp:
            for i in range(n):
                cp.write_row((f"T{i:06d}", f"Tenant {i}", "email", f"t{i}@bench.test"))
        leases = (
            "id, tenant_id, unit_id, manager_id, parent_id, kind, status, signed_on, "
            "start_on, end_on, handover_on, rent_from, cycle_months, due_days, "
            "auto_renew, renewal_term_months, deposit_cents, schedule, created_at"
        )
        with cur.copy(f"COPY leases ({leases}) FROM STDIN") as cp:
            for i in range(n):
                start = date(2025, 1 + i % 12, 1)
                handover = date(2026, 2, 10) if i % 20 == 7 else start
                rent = 300_000 + (i % 500) * 1_000
                parent = f"L{i - 1:06d}" if i % 20 == 19 else None
                schedule = json.dumps(
                    {"rent": {"kind": "fixed", "monthly_cents": rent}, "free_rent": []}
                )
                cp.write_row(
                    (
                        f"L{i:06d}",
                        f"T{i:06d}",
                        f"U{i:06d}",
                        "m1",
                        parent,
                        "standard",
                        "active",
                        date(2024, 12, 1),
                        start,
                        date(2027, start.month, 1),
                        handover,
                        max(start, handover),
                        3 if i % 10 == 3 else 1,
                        10,
                        False,
                        12,
                        2 * rent,
                        schedule,
                        T0,
                    )
                )
        with cur.copy(
            "COPY rent_steps (lease_id, starts_on, monthly_cents, free, source) FROM STDIN"
        ) as cp:
            for i in range(n):
                start = date(2025, 1 + i % 12, 1)
                rent = 300_000 + (i % 500) * 1_000
                cp.write_row((f"L{i:06d}", start, rent, False, "base"))
                if i % 10 == 5:
                    cp.write_row((f"L{i:06d}", date(2026, 3, 16), rent + 20_000, False, "step"))
        cur.execute(
            "INSERT INTO apportion_runs (id, site_id, period_start, period_end, status, "
            "input_hash, result_hash, inputs, flags, held, created_by, created_at, posted_by, "
            "posted_at) VALUES (%s, 'BENCH', '2026-02-01', '2026-03-01', 'posted', %s, %s, "
            "'{}', '[]', false, 'bench', %s, 'bench', %s)",
            (run_id, "0" * 64, "0" * 64, T0, T0),
        )
        with cur.copy(
            "COPY apportion_lines (run_id, line_no, kind, register, tariff, unit, "
            "party, from_date, to_date, component, origin, kwh, cents) FROM STDIN"
        ) as cp:
            for i in range(n):
                cp.write_row(
                    (
                        run_id,
                        i,
                        "charge",
                        "total",
                        "flat",
                        f"U{i:06d}",
                        f"T{i:06d}",
                        "2026-02-01",
                        "2026-03-01",
                        "own",
                        "",
                        "100.000000",
                        5_000 + i % 20_000,
                    )
                )
        cur.execute("ANALYZE")


def floor_copy(session: Session) -> tuple[int, float]:
    """COPY as many rows into invoice_lines as the run just wrote there, like them, on the
    run's invoices (line numbers and a kind of their own, so no key collides), in the run's
    transaction; return (rows, seconds of the COPY)."""
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cur:
        cur.execute(
            "SELECT invoice_id, line_no, lease_id, covers_from, covers_to, cents, ref, "
            "description FROM invoice_lines"
        )
        rows = [
            (inv, 1000 + no, lease, "floor", a, b, cents, ref, text)
            for inv, no, lease, a, b, cents, ref, text in cur.fetchall()
        ]
        started = time.perf_counter()
        with cur.copy(
            "COPY invoice_lines (invoice_id, line_no, lease_id, kind, covers_from, "
            "covers_to, cents, ref, description) FROM STDIN"
        ) as cp:
            for row in rows:
                cp.write_row(row)
        return len(rows), time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5,000 leases instead of 100,000")
    args = parser.parse_args()
    n = 5_000 if args.quick else 100_000
    runs, floors = [], []
    load_start = load_avg()
    with tempfile.TemporaryDirectory(prefix="mf-bench-leases-") as tmp:
        pg = Postgres(Path(tmp) / "pg")
        try:
            sessions = open_registry(pg.url)
            started = time.perf_counter()
            seed(pg.dsn, n)
            print(
                f"seeded {n:,} leases, rent plans and a posted utility run in "
                f"{time.perf_counter() - started:.1f} s"
            )
            for _ in range(3):  # run, then the floor in the same transaction, rolled back
                with sessions() as session:
                    started = time.perf_counter()
                    report = run_billing(
                        session, PERIOD, utilities=PostedApportionment(), today=PERIOD.start
                    )
                    runs.append(time.perf_counter() - started)
                    rows, floor = floor_copy(session)
                    floors.append(floor)
                    session.rollback()
            started = time.perf_counter()
            committed = run_monthly_billing(sessions, PERIOD, today=PERIOD.start)
            committed_s = time.perf_counter() - started
            started = time.perf_counter()
            rerun = run_monthly_billing(sessions, PERIOD, today=PERIOD.start)
            rerun_s = time.perf_counter() - started
            sessions.kw["bind"].dispose()
        finally:
            pg.stop()
    load_end = load_avg()
    run_s, floor_s = statistics.median(runs), statistics.median(floors)
    # each round's run ÷ its own floor (measured back to back), the median over the rounds
    ratio = statistics.median(r / f for r, f in zip(runs, floors, strict=True))
    same = (committed.invoices, committed.lines, committed.total_cents) == (
        report.invoices,
        report.lines,
        report.total_cents,
    )
    passed = ratio <= 3 and same and rerun.invoices == 0 and rerun.lines == 0
    print(
        f"billing run {PERIOD.label}: {report.invoices:,} invoices, {report.lines:,} lines "
        f"(rent {report.rent_cents / 100:,.2f}, utilities {report.utility_cents / 100:,.2f} "
        f"CNY): median {run_s:.2f} s of {', '.join(f'{r:.2f}' for r in runs)}; committed "
        f"run {committed_s:.2f} s"
    )
    print(
        f"floor: COPY of {rows:,} invoice lines, median {floor_s:.2f} s of "
        f"{', '.join(f'{f:.2f}' for f in floors)} → ratio {ratio:.2f} (goal ≤ 3)"
    )
    print(
        f"rerun: {rerun.invoices} invoices, {rerun.already_billed:,} accounts already "
        f"billed, {rerun_s:.2f} s"
    )
    print(
        f"load average (1, 5, 15 min): {load_start} before, {load_end} after; "
        f"committed run = timed runs: {same}; pass: {passed}"
    )
    print(
        json.dumps(
            {
                "bench": "lease_billing",
                "leases": n,
                "invoices": report.invoices,
                "lines": report.lines,
                "run_s": round(run_s, 3),
                "floor_s": round(floor_s, 3),
                "runs_s": [round(r, 3) for r in runs],
                "floors_s": [round(f, 3) for f in floors],
                "ratios": [round(r / f, 2) for r, f in zip(runs, floors, strict=True)],
                "ratio": round(ratio, 2),
                "total_cents": report.total_cents,
                "committed_run_s": round(committed_s, 3),
                "rerun_invoices": rerun.invoices,
                "rerun_lines": rerun.lines,
                "rerun_s": round(rerun_s, 3),
                "goal_ratio_max": 3,
                "load_avg_start": load_start,
                "load_avg_end": load_end,
                "pass": passed,
            }
        )
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
