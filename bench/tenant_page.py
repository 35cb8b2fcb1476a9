"""Bench: the tenant's statement page under load, against a trivial endpoint of the same app.

A registry (SQLite) gets twelve posted months of the worked example (tests/cases/basic.yaml,
use scaled month by month), so the page shows a full history; one tenant link is issued.
The app (``create_app``, as ``meterflow cloud api`` builds it) runs under uvicorn in its own
process on 127.0.0.1, one worker. wrk (Debian's ``wrk``) then loads, in the same run, the
tenant page and ``/healthz`` — 50 connections, 2 threads, 20 s each, after a short warm-up —
and reports latency percentiles. Figure: p99(tenant page) ÷ p99(/healthz); goal ≤ 5, with
every tenant request answered 2xx (the page is checked to be the genuine statement first).

    python bench/tenant_page.py [--quick] [--connections 50] [--duration 20]

Only 127.0.0.1 is loaded; every load run is bounded by wrk's duration. The last line printed
is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BASIC_CASE = ROOT / "tests" / "cases" / "basic.yaml"
GOAL = 5.0
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(work: Path) -> str:
    """Twelve posted months of the worked example in ``work``; the tenant link's path."""
    import yaml
    from cryptography.hazmat.primitives import serialization

    from cloud.apportion.case.loading import case_from_data
    from cloud.apportion.runs import approve_run, create_run, post_run, review_run
    from cloud.gateways.provisioning import CloudSigner
    from cloud.registry.db import open_registry
    from cloud.statements.links import StatementKey, TenantLinkService, WebSecret

    signer = CloudSigner.load_or_create(work / "cloud.key")
    key = serialization.load_pem_private_key((work / "cloud.key").read_bytes(), None)
    secret = WebSecret.load_or_create(work / "web.secret")
    sessions = open_registry(f"sqlite:///{work / 'registry.sqlite'}")
    raw = yaml.safe_load(BASIC_CASE.read_text())
    last = ""
    with sessions.begin() as s:
        for i in range(12):
            month = date(2025 + (4 + i) // 12, (4 + i) % 12 + 1, 1)
            end = date(month.year + month.month // 12, month.month % 12 + 1, 1)
            factor = 0.8 + 0.04 * i
            data = copy.deepcopy(raw)
            data["period"] = {"start": month.isoformat(), "end": end.isoformat()}
            data["occupancy"]["A101"] = [{"tenant": "ACME", "from": "2025-01-01"}]
            data["tariffs"][0]["from"] = "2025-01-01"
            data["readings"] = {
                meter: {
                    month.isoformat(): float(a),
                    end.isoformat(): round(float(a) + (float(b) - float(a)) * factor, 2),
                }
                for meter, (a, b) in ((m, list(v.values())) for m, v in raw["readings"].items())
            }
            data["bill"] = {
                "invoice": f"SGCC-{month:%Y-%m}",
                "amounts": {"total": round(720.0 * factor, 2)},
            }
            run = create_run(s, case_from_data(data), by="bench")
            review_run(s, run.id, by="bench-reviewer")
            approve_run(s, run.id, by="bench-approver")  # four eyes: not who made or reviewed
            post_run(s, run.id, by="bench", key=key)  # type: ignore[arg-type]
            last = run.id
    del signer
    link = TenantLinkService(sessions, secret).link_for(StatementKey(last, "A101", "ACME"))
    sessions.kw["bind"].dispose()
    return link.path()


def serve(work: Path, port: int) -> None:
    """The child process: the app on the seeded registry, uvicorn on 127.0.0.1:PORT."""
    import uvicorn
    from cryptography.hazmat.primitives import serialization

    from cloud.gateways.provisioning import CloudSigner, ProvisioningService
    from cloud.registry.db import open_registry
    from cloud.statements.links import WebSecret
    from cloud.web.app import create_app
    from cloud.web.deps import ApiServices, WebServices

    signer = CloudSigner.load_or_create(work / "cloud.key")
    key = serialization.load_pem_private_key((work / "cloud.key").read_bytes(), None)
    provisioning = ProvisioningService(
        open_registry(f"sqlite:///{work / 'registry.sqlite'}"), signer
    )
    web = WebServices.build(
        provisioning,
        signing_key=key,  # type: ignore[arg-type]
        secret=WebSecret.load_or_create(work / "web.secret"),
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


def wrk(url: str, connections: int, duration_s: int) -> dict[str, float]:
    """Run wrk against ``url``; its latency percentiles [ms], requests/s and errors."""
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{duration_s}s",
            "--latency",
            "--timeout",
            "10s",
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
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    figures["non_2xx"] = float(non2xx.group(1)) if non2xx else 0.0
    figures["socket_errors"] = float(sum(int(x) for x in errors.groups())) if errors else 0.0
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 s runs instead of 20 s")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=int, default=20, help="seconds per endpoint")
    parser.add_argument("--serve", nargs=2, metavar=("DIR", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), int(args.serve[1]))
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    duration = 5 if args.quick else args.duration
    work = Path(tempfile.mkdtemp(prefix="mf-bench-tenant-"))
    proc = None
    try:
        t0 = time.monotonic()
        path = seed(work)
        print(f"seeded 12 posted months in {time.monotonic() - t0:.1f} s; link {path}")
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(work), str(port)],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/healthz", proc)
        wait_ready(f"{base}{path}", proc)
        check_statement_page(f"{base}{path}")
        for url in (f"{base}{path}", f"{base}/healthz"):  # warm-up: caches, code paths
            wrk(url, args.connections, 2)
        page = wrk(f"{base}{path}", args.connections, duration)
        trivial = wrk(f"{base}/healthz", args.connections, duration)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(15)
        shutil.rmtree(work, ignore_errors=True)
    ratio = page["p99_ms"] / trivial["p99_ms"]
    errors = page["non_2xx"] + page["socket_errors"]
    print(
        f"tenant page: p50 {page['p50_ms']:.1f} ms, p90 {page['p90_ms']:.1f} ms, "
        f"p99 {page['p99_ms']:.1f} ms, {page['rps']:.0f} req/s, "
        f"{page['non_2xx']:.0f} non-2xx, {page['socket_errors']:.0f} socket errors"
    )
    print(
        f"/healthz:    p50 {trivial['p50_ms']:.1f} ms, p90 {trivial['p90_ms']:.1f} ms, "
        f"p99 {trivial['p99_ms']:.1f} ms, {trivial['rps']:.0f} req/s"
    )
    print(
        f"p99 ratio {ratio:.2f} (goal ≤ {GOAL:g}) with {args.connections} connections, "
        f"{duration} s each, one uvicorn worker on 127.0.0.1"
    )
    print(
        json.dumps(
            {
                "bench": "tenant_page",
                "connections": args.connections,
                "duration_s": duration,
                "tenant_p99_ms": round(page["p99_ms"], 2),
                "healthz_p99_ms": round(trivial["p99_ms"], 2),
                "tenant_p50_ms": round(page["p50_ms"], 2),
                "healthz_p50_ms": round(trivial["p50_ms"], 2),
                "tenant_rps": round(page["rps"]),
                "healthz_rps": round(trivial["rps"]),
                "tenant_errors": errors,
                "p99_ratio": round(ratio, 2),
                "goal": GOAL,
                "goal_met": ratio <= GOAL and errors == 0,
            }
        )
    )


if __name__ == "__main__":
    main()
