"""Bench: the tenant's statement page under load over many distinct links, against a trivial
endpoint of the same app, with the page cache on and off.

A registry (SQLite) gets twelve posted months of a site of N units (84; ``--quick``: 17),
each unit a tenant, one main meter (usage key, 5 % loss cap), a lift on a common meter (area
key) and the landlord's office, so each page shows a full history, shared lines and loss.
One tenant link is issued per statement: 1,000 of them are measured (``--quick``: 200), one
more only warms the code paths. The app (``create_app``, as ``meterflow cloud api`` builds
it) runs under uvicorn in its own process on 127.0.0.1, one worker. wrk (Debian's ``wrk``)
requests the measured links at random (a Lua script, seeded; 50 connections, 2 threads,
20 s), then ``/healthz`` for as long; both again on a fresh server with the page cache off
(``MF_WEB_PAGE_CACHE=0``). Each server starts cold, so with the cache on the links' first
visits render their pages: the figure sees the page's cost, not only cache hits.

Figures: p50/p99 of the tenant page with the cache on, p99 with it off, ``/healthz`` p99
beside each; ``p99_ratio`` = p99(page, cache on) ÷ p99(/healthz); goal ≤ 5, with every
tenant request answered 2xx (one link per server is checked to open the genuine statement
first, so a cheaper refusal page cannot pass). ``load_avg_start`` / ``load_avg_end`` are
``os.getloadavg()`` before seeding and after the last load; ``pass`` is the goal; the exit
status is 0 when it holds, else 1.

    python bench/tenant_page.py [--quick] [--connections 50] [--duration 20] [--links 1000]

Only 127.0.0.1 is loaded; every load run is bounded by wrk's duration, seeding by the number
of units. The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GOAL = 5.0
SEED = 17
MONTHS = 12
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_avg() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def month_case(
    units: int, month: date, rng: random.Random, start: dict[str, float]
) -> dict[str, Any]:
    """A month of the site: ``units`` units with a tenant each, a lift and an office; the
    meters' readings continue from ``start`` (updated to the month's end)."""
    end = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    ids = [f"U{i:03d}" for i in range(1, units + 1)]
    use = {u: round(rng.uniform(150, 900), 2) for u in ids}
    use["C1"] = round(rng.uniform(300, 500), 2)
    use["L1"] = round(rng.uniform(100, 200), 2)
    metered = sum(use.values())
    use["M0"] = round(metered * rng.uniform(1.02, 1.06), 2)
    readings = {}
    for meter, kwh in use.items():
        first = start.get(meter, 1000.0)
        readings[meter] = {month.isoformat(): first, end.isoformat(): round(first + kwh, 2)}
        start[meter] = round(first + kwh, 2)
    return {
        "site": "bench-park",
        "name": "Bench park",
        "period": {"start": month.isoformat(), "end": end.isoformat()},
        "units": [
            {"id": u, "area": 40 + (i * 7) % 120, "name": f"Unit {u}"} for i, u in enumerate(ids)
        ],
        "meters": [{"id": "M0"}, {"id": "C1"}, {"id": "L1"}] + [{"id": f"M{u}"} for u in ids],
        "tree": [
            {
                "id": "MAIN",
                "kind": "main",
                "meter": "M0",
                "rule": {"basis": "usage", "loss_cap": 0.05},
            },
            {
                "id": "LIFT",
                "kind": "common",
                "parent": "MAIN",
                "meter": "C1",
                "rule": {"basis": "area", "common_type": "mandatory"},
            },
            {"id": "OFFICE", "kind": "landlord", "parent": "MAIN", "meter": "L1"},
        ]
        + [{"id": u, "kind": "unit", "parent": "MAIN", "meter": f"M{u}"} for u in ids],
        "occupancy": {u: [{"tenant": f"T{u}", "from": "2025-01-01"}] for u in ids},
        "readings": {(m if m in ("M0", "C1", "L1") else f"M{m}"): r for m, r in readings.items()},
        "tariffs": [{"id": "flat", "kind": "flat", "from": "2025-01-01", "price": 0.6}],
        "bill": {
            "invoice": f"SGCC-{month:%Y-%m}",
            "amounts": {"total": f"{use['M0'] * 0.6:.2f}"},
        },
    }


def seed(work: Path, units: int) -> list[str]:
    """Twelve posted months of a site of ``units`` units in ``work``; the paths of the
    tenant links of every statement, newest month first."""
    from cryptography.hazmat.primitives import serialization

    from cloud.apportion.case.loading import case_from_data
    from cloud.apportion.runs import approve_run, create_run, post_run, review_run
    from cloud.gateways.provisioning import CloudSigner
    from cloud.registry.db import open_registry
    from cloud.statements.links import StatementKey, TenantLinkService, WebSecret

    CloudSigner.load_or_create(work / "cloud.key")
    key = serialization.load_pem_private_key((work / "cloud.key").read_bytes(), None)
    secret = WebSecret.load_or_create(work / "web.secret")
    sessions = open_registry(f"sqlite:///{work / 'registry.sqlite'}")
    rng = random.Random(SEED)
    readings: dict[str, float] = {}
    runs = []
    for i in range(MONTHS):
        month = date(2025 + (4 + i) // 12, (4 + i) % 12 + 1, 1)
        with sessions.begin() as s:
            run = create_run(s, case_from_data(month_case(units, month, rng, readings)), by="bench")
            review_run(s, run.id, by="bench-reviewer")
            approve_run(s, run.id, by="bench-approver")  # four eyes: not who made or reviewed
            post_run(s, run.id, by="bench", key=key)  # type: ignore[arg-type]
            runs.append(run.id)
    links = TenantLinkService(sessions, secret)
    paths = [
        links.link_for(StatementKey(run, f"U{u:03d}", f"TU{u:03d}")).path()
        for run in reversed(runs)
        for u in range(1, units + 1)
    ]
    sessions.kw["bind"].dispose()
    return paths


def serve(work: Path, port: int) -> None:
    """The child process: the app on the seeded registry, uvicorn on 127.0.0.1:PORT; the
    page cache as ``MF_WEB_PAGE_CACHE`` says (cloud/web/settings.py)."""
    import uvicorn
    from cryptography.hazmat.primitives import serialization

    from cloud.gateways.provisioning import CloudSigner, ProvisioningService
    from cloud.registry.db import open_registry
    from cloud.statements.links import WebSecret
    from cloud.web.app import create_app
    from cloud.web.deps import ApiServices, WebServices
    from cloud.web.settings import WebSettings

    signer = CloudSigner.load_or_create(work / "cloud.key")
    key = serialization.load_pem_private_key((work / "cloud.key").read_bytes(), None)
    provisioning = ProvisioningService(
        open_registry(f"sqlite:///{work / 'registry.sqlite'}"), signer
    )
    web = WebServices.build(
        provisioning,
        signing_key=key,  # type: ignore[arg-type]
        secret=WebSecret.load_or_create(work / "web.secret"),
        page_cache=WebSettings(dev=True).page_cache,
    )
    app = create_app(ApiServices(provisioning=provisioning, web=web))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout_s} s")


def check_statement_page(url: str) -> None:
    """The link must open the genuine statement (a refusal page would be cheaper to load)."""
    import httpx

    reply = httpx.get(url, timeout=10)
    if reply.status_code != 200 or 'data-testid="genuine"' not in reply.text:
        raise SystemExit(f"{url} is not the genuine statement page ({reply.status_code})")


def random_paths_script(paths: list[str], work: Path) -> Path:
    """A wrk Lua script requesting ``paths`` at random (each thread seeded apart)."""
    table = ",\n".join(json.dumps(p) for p in paths)
    script = work / "links.lua"
    script.write_text(
        f"local paths = {{\n{table}\n}}\n"
        "local threads = 0\n"
        "function setup(thread)\n"
        "  threads = threads + 1\n"
        "  thread:set('id', threads)\n"
        "end\n"
        "function init(args)\n"
        f"  math.randomseed({SEED} * 1000 + id)\n"
        "end\n"
        "function request()\n"
        "  return wrk.format('GET', paths[math.random(#paths)])\n"
        "end\n"
    )
    return script


def wrk(
    url: str, connections: int, duration_s: int, script: Path | None = None
) -> dict[str, float]:
    """Run wrk against ``url`` (with a Lua ``script`` choosing the paths); its latency
    percentiles [ms], requests/s and errors."""
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{duration_s}s",
            "--latency",
            "--timeout",
            "10s",
            *(["-s", str(script)] if script else []),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration_s + 60,
    ).stdout
    figures: dict[str, float] = {}
    for pct in ("50", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if m is None:
            raise SystemExit(f"wrk printed no {pct}% latency:\n{out}")
        figures[f"p{pct}_ms"] = float(m.group(1)) * _UNITS[m.group(2)]
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    figures["rps"] = float(rps.group(1)) if rps else 0.0
    total = re.search(r"^\s+(\d+) requests in", out, re.M)
    figures["requests"] = float(total.group(1)) if total else 0.0
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    figures["non_2xx"] = float(non2xx.group(1)) if non2xx else 0.0
    figures["socket_errors"] = float(sum(int(x) for x in errors.groups())) if errors else 0.0
    return figures


def measure(
    work: Path, paths: list[str], warm: str, cache: bool, connections: int, duration: int
) -> tuple[dict[str, float], dict[str, float]]:
    """A fresh server (page cache on or off): warm its code paths on ``warm`` and
    /healthz, then load the random ``paths``, then /healthz; both figures."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(work), str(port)],
        env={**os.environ, "PYTHONPATH": str(ROOT), "MF_WEB_PAGE_CACHE": "1" if cache else "0"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{base}/healthz", proc)
        check_statement_page(f"{base}{warm}")
        for url in (f"{base}{warm}", f"{base}/healthz"):  # code paths; not the measured links
            wrk(url, connections, 2)
        page = wrk(base, connections, duration, random_paths_script(paths, work))
        trivial = wrk(f"{base}/healthz", connections, duration)
    finally:
        proc.terminate()
        proc.wait(15)
    return page, trivial


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 links, 5 s runs")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=int, default=20, help="seconds per load run")
    parser.add_argument("--links", type=int, default=1000, help="distinct tenant links loaded")
    parser.add_argument("--serve", nargs=2, metavar=("DIR", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), int(args.serve[1]))
        return 0
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    duration = 5 if args.quick else args.duration
    wanted = 200 if args.quick else args.links
    if not 1 <= wanted <= 5000:
        raise SystemExit(f"--links: expected 1 to 5000, got {wanted}")
    units = -(-(wanted + 1) // MONTHS)  # one statement more than links: the warm-up link
    load_start = load_avg()
    work = Path(tempfile.mkdtemp(prefix="mf-bench-tenant-"))
    try:
        t0 = time.monotonic()
        every = seed(work, units)
        print(
            f"seeded {MONTHS} posted months of {units} units in {time.monotonic() - t0:.1f} s: "
            f"{len(every)} statements, {wanted} links measured"
        )
        rng = random.Random(SEED)
        rng.shuffle(every)
        warm, paths = every[0], every[1 : wanted + 1]
        assert len(set(paths)) == wanted and warm not in paths
        page, trivial = measure(work, paths, warm, True, args.connections, duration)
        page_off, trivial_off = measure(work, paths, warm, False, args.connections, duration)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_end = load_avg()
    ratio = page["p99_ms"] / trivial["p99_ms"]
    ratio_off = page_off["p99_ms"] / trivial_off["p99_ms"]
    errors = (
        page["non_2xx"] + page["socket_errors"] + page_off["non_2xx"] + page_off["socket_errors"]
    )
    for name, f in (
        ("tenant page, cache on ", page),
        ("/healthz              ", trivial),
        ("tenant page, cache off", page_off),
        ("/healthz              ", trivial_off),
    ):
        print(
            f"{name}: p50 {f['p50_ms']:.1f} ms, p90 {f['p90_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms,"
            f" {f['rps']:.0f} req/s ({f['requests']:.0f}), {f['non_2xx']:.0f} non-2xx,"
            f" {f['socket_errors']:.0f} socket errors"
        )
    passed = ratio <= GOAL and errors == 0
    print(
        f"p99 ratio {ratio:.2f} with the page cache on (goal ≤ {GOAL:g}), {ratio_off:.2f} with it"
        f" off; {wanted} links at random, {args.connections} connections, {duration} s each,"
        f" one uvicorn worker on 127.0.0.1; load {load_start} → {load_end}"
    )
    print(
        json.dumps(
            {
                "bench": "tenant_page",
                "links": wanted,
                "units": units,
                "months": MONTHS,
                "connections": args.connections,
                "duration_s": duration,
                "tenant_p50_ms": round(page["p50_ms"], 2),
                "tenant_p99_ms": round(page["p99_ms"], 2),
                "healthz_p50_ms": round(trivial["p50_ms"], 2),
                "healthz_p99_ms": round(trivial["p99_ms"], 2),
                "tenant_nocache_p50_ms": round(page_off["p50_ms"], 2),
                "tenant_nocache_p99_ms": round(page_off["p99_ms"], 2),
                "healthz_nocache_run_p99_ms": round(trivial_off["p99_ms"], 2),
                "tenant_rps": round(page["rps"]),
                "tenant_nocache_rps": round(page_off["rps"]),
                "healthz_rps": round(trivial["rps"]),
                "tenant_requests": round(page["requests"]),
                "tenant_errors": errors,
                "p99_ratio": round(ratio, 2),
                "p99_ratio_nocache": round(ratio_off, 2),
                "goal": GOAL,
                "load_avg_start": load_start,
                "load_avg_end": load_end,
                "pass": passed,
            }
        )
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
