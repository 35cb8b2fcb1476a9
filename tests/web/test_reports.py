"""The lease reports through their surfaces, on SQLite and PostgreSQL: each report's figures
(API, command, Excel and CSV exports) equal SQL written here by hand against the same
database; a manager's reports keep to their building and withhold arrears amounts; bad
parameters are refused saying what was expected; the monthly e-mail reaches a real SMTP
server with the workbook attached, once per month and recipient.

The portfolio is :mod:`tests.support.report_portfolio` (five billed months, payments on
time, late, partial and never, the collections ladder run)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
import typer
from sqlalchemy import text
from typer.testing import CliRunner

from cloud.staff.accounts import SessionKind
from meterflow.cli.reports import report_app
from tests.leases.conftest import smtp_receiver_fixture  # noqa: F401 (the fixture)
from tests.support import servers
from tests.support.browser import PASSWORD, WebRig, make_rig, serve
from tests.support.report_portfolio import seed_report_portfolio
from tests.support.smtp_http_receivers import SmtpReceiver

app = typer.Typer()
app.add_typer(report_app, name="report")

AGING_DAY = date(2026, 6, 20)
OCC_DAY = date(2026, 4, 30)
EXPIRING_DAY = date(2026, 6, 5)
FUNNEL = (date(2026, 2, 1), date(2026, 3, 31))
RUNNING = ("active", "expiring", "open_ended")
SIGNED = ("signed", "active", "expiring", "open_ended", "renewed", "terminated")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def rig(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Any]:
    work = tmp_path_factory.mktemp(f"reports-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{work / 'registry.sqlite'}"
        rig = make_rig(work, url=url, months=1)
        seed_report_portfolio(rig.sessions, PASSWORD)
        yield rig, url
        rig.sessions.kw["bind"].dispose()
        return
    with servers.fresh_postgres_database(request.getfixturevalue("postgres_server"), "rep") as url:
        rig = make_rig(work, url=url, months=1)
        seed_report_portfolio(rig.sessions, PASSWORD)
        yield rig, url
        rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def base_url(rig: tuple[WebRig, str]) -> Iterator[str]:
    with serve(rig[0].app) as url:
        yield url


def bearer(rig: WebRig, username: str) -> dict[str, str]:
    token = rig.web.accounts.sign_in(username, PASSWORD, SessionKind.API).token
    return {"Authorization": f"Bearer {token}"}


def cookie(rig: WebRig, username: str) -> dict[str, str]:
    token = rig.web.accounts.sign_in(username, PASSWORD, SessionKind.COOKIE).token
    return {"Cookie": f"mf_session={token}"}


def sql(rig: WebRig, statement: str, **params: Any) -> list[tuple[Any, ...]]:
    with rig.sessions() as s:
        return [tuple(r) for r in s.execute(text(statement), params).all()]


def days_past_due(rig: WebRig) -> str:
    """``:d − invoices.due_on`` in days, as each database writes it."""
    if rig.sessions.kw["bind"].dialect.name == "postgresql":
        return "(CAST(:d AS date) - i.due_on)"
    return "CAST(julianday(:d) - julianday(i.due_on) AS INTEGER)"


# ----------------------------------------------------------------------------- SQL by hand

COVERING = (
    "l.unit_id = u.id AND l.status IN ('signed','active','expiring','open_ended','renewed',"
    "'terminated') AND l.rent_from IS NOT NULL AND l.rent_from <= :d "
    "AND (l.ended_on IS NULL OR l.ended_on > :d)"
)


def occupancy_sql(rig: WebRig, day: date, where: str = "1 = 1") -> dict[tuple[str, str], tuple]:
    """(site, building) → (rentable, occupied, rentable m², occupied m²), and ("", "") for all.

    Rentable: profile says so (or none) and no internal lease covers the day. Occupied: a
    standard lease covers the day and one of its rent lines sits on a paid invoice."""
    rows = sql(
        rig,
        f"""
        SELECT site_id, building, SUM(r), SUM(o), SUM(r * area_m2), SUM(o * area_m2) FROM (
          SELECT u.site_id, u.building, u.area_m2,
            CASE WHEN (p.rentable IS NULL OR p.rentable = :yes) AND NOT EXISTS (
                SELECT 1 FROM leases l WHERE {COVERING} AND l.kind = 'internal')
              THEN 1 ELSE 0 END AS r,
            CASE WHEN (p.rentable IS NULL OR p.rentable = :yes) AND NOT EXISTS (
                SELECT 1 FROM leases l WHERE {COVERING} AND l.kind = 'internal')
              AND EXISTS (SELECT 1 FROM leases l WHERE {COVERING} AND l.kind = 'standard'
                AND EXISTS (SELECT 1 FROM invoice_lines il JOIN invoices i
                  ON i.id = il.invoice_id WHERE il.lease_id = l.id AND il.kind = 'rent'
                  AND i.status = 'paid'))
              THEN 1 ELSE 0 END AS o
          FROM units u LEFT JOIN unit_profiles p ON p.unit_id = u.id WHERE {where}
        ) x GROUP BY site_id, building
        """,
        d=day,
        yes=True,
    )
    out = {(s, b): (int(r), int(o), float(ra), float(oa)) for s, b, r, o, ra, oa in rows}
    out[("", "")] = tuple(sum(v[i] for v in out.values()) for i in range(4))  # type: ignore[assignment]
    return out


def aging_sql(rig: WebRig, day: date, where: str = "1 = 1") -> dict[tuple[str, str, str], tuple]:
    """(site, building, bucket) → (outstanding cents, invoices) on ``day``: invoices issued
    by then and past due, less what was allocated to them by then."""
    age = days_past_due(rig)
    rows = sql(
        rig,
        f"""
        SELECT u.site_id, u.building,
          CASE WHEN {age} <= 30 THEN '0-30' WHEN {age} <= 60 THEN '31-60'
               WHEN {age} <= 90 THEN '61-90' ELSE '90+' END AS bucket,
          SUM(i.total_cents - COALESCE(a.paid, 0)), COUNT(*)
        FROM invoices i JOIN leases l ON l.id = i.lease_id JOIN units u ON u.id = l.unit_id
        LEFT JOIN (SELECT invoice_id, SUM(cents) AS paid FROM payment_allocations
                   WHERE allocated_on <= :d GROUP BY invoice_id) a ON a.invoice_id = i.id
        WHERE i.issued_on <= :d AND i.due_on < :d
          AND i.total_cents - COALESCE(a.paid, 0) > 0 AND {where}
        GROUP BY u.site_id, u.building,
          CASE WHEN {age} <= 30 THEN '0-30' WHEN {age} <= 60 THEN '31-60'
               WHEN {age} <= 90 THEN '61-90' ELSE '90+' END
        """,
        d=day,
    )
    return {(s, b, k): (int(c), int(n)) for s, b, k, c, n in rows}


def funnel_sql(rig: WebRig, first: date, last: date, where: str = "1 = 1") -> dict[str, Any]:
    """Invoices whose first overdue day is in [first, last] and that were not paid in full by
    their due day: how many, per step how many reached it and how many were paid after it
    was their last."""
    population = f"""
        SELECT i.id, i.paid_on FROM invoices i JOIN leases l ON l.id = i.lease_id
        JOIN units u ON u.id = l.unit_id
        WHERE i.due_on >= :f AND i.due_on <= :t AND i.total_cents > 0
          AND (i.paid_on IS NULL OR i.paid_on > i.due_on) AND {where}"""
    params = {"f": first - timedelta(days=1), "t": last - timedelta(days=1)}
    count, paid = sql(rig, f"SELECT COUNT(*), COUNT(paid_on) FROM ({population}) p", **params)[0]
    reached = dict(
        sql(
            rig,
            f"SELECT e.step, COUNT(*) FROM collection_events e JOIN ({population}) p "
            "ON p.id = e.invoice_id GROUP BY e.step",
            **params,
        )
    )
    paid_after = dict(
        sql(
            rig,
            "SELECT m.top, COUNT(*) FROM (SELECT invoice_id, MAX(step) AS top "
            f"FROM collection_events GROUP BY invoice_id) m JOIN ({population}) p "
            "ON p.id = m.invoice_id WHERE p.paid_on IS NOT NULL GROUP BY m.top",
            **params,
        )
    )
    return {"overdue": count, "paid": paid, "reached": reached, "paid_after": paid_after}


# ----------------------------------------------------------------------------- tests


def test_occupancy_equals_sql(rig: tuple[WebRig, str], base_url: str) -> None:
    web, _ = rig
    with httpx.Client(base_url=base_url) as c:
        got = c.get(
            f"/api/v1/reports/occupancy?day={OCC_DAY}&from=2026-01-01&to=2026-06-30",
            headers=bearer(web, "admin"),
        ).json()
    want = occupancy_sql(web, OCC_DAY)
    seen = {("", ""): got["total"]} | {
        (g["site_id"], g["building"]): g["figures"] for g in got["groups"] if g["by"] == "building"
    }
    assert set(seen) == set(want)
    for key, f in seen.items():
        assert (
            f["rentable_units"],
            f["occupied_units"],
            float(f["rentable_area_m2"]),
            float(f["occupied_area_m2"]),
        ) == want[key], key
        # rates: exact decimal strings, four places
        r, o = want[key][:2]
        assert f["unit_rate"] == (f"{o / r:.4f}" if r else "0.0000")
    sites = {
        g["site_id"]: g["figures"]["occupied_units"] for g in got["groups"] if g["by"] == "site"
    }
    assert sites == {
        s: sum(v[1] for (site, b), v in want.items() if site == s) for s in ("park-a", "park-b")
    }
    types = {
        g["property_type"]: g["figures"]["rentable_units"]
        for g in got["groups"]
        if g["by"] == "type"
    }
    assert types == dict(
        sql(
            web,
            "SELECT COALESCE(p.property_type, 'residential'), COUNT(*) FROM units u "
            "LEFT JOIN unit_profiles p ON p.unit_id = u.id GROUP BY 1",
        )
    )
    ends = [f["day"] for f in got["series"]]
    assert ends == [
        "2026-01-31",
        "2026-02-28",
        "2026-03-31",
        "2026-04-30",
        "2026-05-31",
        "2026-06-30",
    ]
    for f in got["series"]:
        r, o, *_ = occupancy_sql(web, date.fromisoformat(f["day"]))[("", "")]
        assert (f["rentable_units"], f["occupied_units"]) == (r, o), f["day"]
    assert got["series"][0]["occupied_units"] < got["series"][-1]["occupied_units"]


def test_expiring_equals_sql(rig: tuple[WebRig, str], base_url: str) -> None:
    web, _ = rig
    d = EXPIRING_DAY
    with httpx.Client(base_url=base_url) as c:
        got = c.get(f"/api/v1/reports/expiring?day={d}", headers=bearer(web, "admin")).json()
    # no covering payment of these leases runs past their end, so expiry = the contract end
    want = dict(
        sql(
            web,
            "SELECT CASE WHEN end_on <= :d THEN 'high' WHEN end_on <= :d7 THEN 'medium' "
            "ELSE 'low' END, COUNT(*) FROM leases WHERE status IN ('active','expiring',"
            "'open_ended') AND end_on <= :d30 GROUP BY 1",
            d=d,
            d7=d + timedelta(days=7),
            d30=d + timedelta(days=30),
        )
    )
    assert got["counts"] == {k: want.get(k, 0) for k in ("high", "medium", "low")}
    assert got["counts"] == {"high": 1, "medium": 1, "low": 1}
    assert [(r["lease_id"], r["risk"]) for r in got["leases"]] == [
        ("L-X1", "high"),
        ("L-X2", "medium"),
        ("L-X3", "low"),
    ]


def test_aging_equals_sql_and_the_exports_carry_it(rig: tuple[WebRig, str], base_url: str) -> None:
    web, _ = rig
    d = AGING_DAY
    want = aging_sql(web, d)
    assert len({k[2] for k in want}) == 4, "the portfolio fills every bucket"
    with httpx.Client(base_url=base_url) as c:
        got = c.get(f"/api/v1/reports/aging?day={d}", headers=bearer(web, "fin-a")).json()
        seen = {
            (r["site_id"], r["building"], b): (r["cents"][b], r["invoices"][b])
            for r in got["rows"]
            for b in got["buckets"]
            if r["invoices"][b]
        }
        assert seen == {k: v for k, v in want.items() if k[0] == "park-a"}
        assert got["total"]["total_cents"] == sum(
            c for k, (c, _) in want.items() if k[0] == "park-a"
        )
        # the page's Excel and CSV exports: the same figures, in yuan
        auth = cookie(web, "fin-a")
        xlsx = c.get(f"/reports/aging?day={d}&format=xlsx&lang=en", headers=auth)
        assert xlsx.headers["content-type"].startswith("application/vnd.openxmlformats")
        sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content)).active
        head = [cell.value for cell in sheet[1]]
        assert head[:4] == ["Site", "Building", "Outstanding (CNY) 0-30", "Invoices 0-30"]
        rows = {(r[0], r[1]): r for r in sheet.iter_rows(min_row=2, values_only=True)}
        for (site, building, bucket), (cents, n) in want.items():
            if site != "park-a":
                continue
            col = head.index(f"Outstanding (CNY) {bucket}")
            assert round(rows[(site, building)][col] * 100) == cents
            assert rows[(site, building)][col + 1] == n
        assert (
            round(rows[("Total", None)][head.index("Outstanding total (CNY)")] * 100)
            == (got["total"]["total_cents"])
        )
        csv = c.get(f"/reports/aging?day={d}&format=csv", headers=auth)
        assert csv.content.startswith(b"\xef\xbb\xbf") and csv.headers[
            "content-disposition"
        ].endswith(f'report-aging-{d}.csv"')
        lines = csv.content.decode("utf-8-sig").splitlines()
        assert lines[0].startswith("项目,楼栋,未收金额（元） 0-30")
        assert len(lines) == len(rows) + 1


def test_collections_funnel_equals_sql(rig: tuple[WebRig, str], base_url: str) -> None:
    web, _ = rig
    first, last = FUNNEL
    want = funnel_sql(web, first, last)
    with httpx.Client(base_url=base_url) as c:
        got = c.get(
            f"/api/v1/reports/collections?from={first}&to={last}", headers=bearer(web, "sup-a")
        ).json()
    # the supervisor's sites: park-a only
    mine = funnel_sql(web, first, last, "u.site_id = 'park-a'")
    assert (got["overdue"], got["paid"]) == (mine["overdue"], mine["paid"])
    assert {s["step"]: s["reached"] for s in got["steps"]} == {
        step: mine["reached"].get(step, 0) for step in (1, 3, 7, 15)
    }
    assert {s["step"]: s["paid_after"] for s in got["steps"]} == {
        step: mine["paid_after"].get(step, 0) for step in (1, 3, 7, 15)
    }
    assert got["paid_before_steps"] == mine["paid"] - sum(mine["paid_after"].values())
    # the portfolio's story: A2 paid after the reminder, A1 after the T+3 task, X2 after
    # the escalation; something reached every step
    assert [s["paid_after"] for s in got["steps"]] == [1, 1, 0, 1]
    assert all(s["reached"] for s in got["steps"]) and want["overdue"] > mine["overdue"]


def test_a_manager_sees_their_building_and_no_arrears(
    rig: tuple[WebRig, str], base_url: str
) -> None:
    web, _ = rig
    with httpx.Client(base_url=base_url) as c:
        auth = bearer(web, "mgr-a")  # park-a/A
        aging = c.get(f"/api/v1/reports/aging?day={AGING_DAY}", headers=auth).json()
        want = {k: v for k, v in aging_sql(web, AGING_DAY).items() if k[:2] == ("park-a", "A")}
        assert aging["withheld"] == ["arrears"] and aging["total"]["total_cents"] is None
        assert {
            (r["site_id"], r["building"], b): (r["cents"][b], r["invoices"][b])
            for r in aging["rows"]
            for b in aging["buckets"]
            if r["invoices"][b]
        } == {k: (None, n) for k, (_, n) in want.items()}
        occ = c.get(f"/api/v1/reports/occupancy?day={OCC_DAY}", headers=auth).json()
        assert {(g["site_id"], g["building"]) for g in occ["groups"] if g["by"] == "building"} == {
            ("park-a", "A")
        }
        assert occ["total"]["occupied_units"] == occupancy_sql(web, OCC_DAY)[("park-a", "A")][1]
        # another building as a filter gives nothing of it
        other = c.get(f"/api/v1/reports/aging?day={AGING_DAY}&building=B", headers=auth).json()
        assert other["rows"] == []
        page = c.get(f"/reports/aging?day={AGING_DAY}&lang=en", headers=cookie(web, "mgr-a"))
        assert "Outstanding (CNY)" not in page.text and "does not see arrears" in page.text
        # legal reads expiring and aging, not occupancy or the funnel
        legal = bearer(web, "legal-a")
        assert c.get("/api/v1/reports/expiring", headers=legal).status_code == 200
        assert c.get("/api/v1/reports/collections", headers=legal).status_code == 403


#: each caller's scope as SQL on units ``u``, and whether the role sees arrears amounts
SCOPES = {
    "admin": ("1 = 1", True),
    "fin-a": ("u.site_id = 'park-a'", True),
    "sup-a": ("u.site_id = 'park-a'", True),
    "legal-a": ("u.site_id = 'park-a'", False),
    "mgr-a": ("u.site_id = 'park-a' AND u.building = 'A'", False),
    "mgr-ab": ("u.site_id = 'park-a' AND u.building = 'B'", False),
    "mgr-p": ("u.site_id = 'park-b' AND u.building = 'A'", False),
    "fin-b": ("u.site_id = 'park-b'", True),
}


def test_every_callers_reports_keep_to_their_sites_and_buildings(
    rig: tuple[WebRig, str], base_url: str
) -> None:
    web, _ = rig
    with httpx.Client(base_url=base_url) as c:
        for who, (where, money) in SCOPES.items():
            auth = bearer(web, who)
            aging = c.get(f"/api/v1/reports/aging?day={AGING_DAY}", headers=auth).json()
            want = aging_sql(web, AGING_DAY, where)
            assert {
                (r["site_id"], r["building"], b): (r["cents"][b], r["invoices"][b])
                for r in aging["rows"]
                for b in aging["buckets"]
                if r["invoices"][b]
            } == {k: (c if money else None, n) for k, (c, n) in want.items()}, who
            assert (aging["withheld"] == []) == money, who
            funnel = c.get(
                f"/api/v1/reports/collections?from={FUNNEL[0]}&to={FUNNEL[1]}", headers=auth
            )
            if who == "legal-a":
                assert funnel.status_code == 403
                continue
            assert funnel.json()["overdue"] == funnel_sql(web, *FUNNEL, where)["overdue"], who
            occ = c.get(f"/api/v1/reports/occupancy?day={OCC_DAY}", headers=auth).json()
            buildings = {k: v for k, v in occupancy_sql(web, OCC_DAY, where).items() if k[0]}
            assert {
                (g["site_id"], g["building"]): g["figures"]["occupied_units"]
                for g in occ["groups"]
                if g["by"] == "building"
            } == {k: v[1] for k, v in buildings.items()}, who


def test_bad_parameters_are_refused_saying_what_was_expected(
    rig: tuple[WebRig, str], base_url: str
) -> None:
    web, _ = rig
    with httpx.Client(base_url=base_url) as c:
        auth = bearer(web, "admin")
        for query, says in (
            ("occupancy?from=2020-01-01&to=2026-01-01", "at most 36"),
            ("occupancy?from=2026-01-01", "both days"),
            ("occupancy?from=2026-03-01&to=2026-01-01", "from ≤ to"),
            ("aging?day=1999-12-31", "expected a day from 2000-01-01"),
            ("collections?from=2025-01-01&to=2026-06-30", "at most 366 days"),
        ):
            reply = c.get(f"/api/v1/reports/{query}", headers=auth)
            assert reply.status_code == 400 and says in reply.json()["detail"], query
        for query in ("aging?day=2026-13-01", "aging?type=castle", "aging?site=" + "x" * 65):
            assert c.get(f"/api/v1/reports/{query}", headers=auth).status_code == 400
        staff = cookie(web, "admin")
        assert c.get("/reports/aging?format=pdf", headers=staff).status_code == 400
        page = c.get("/reports/occupancy?from=2026-01-01&lang=en", headers=staff)
        assert page.status_code == 400 and "both days" in page.text
        assert "text/html" in page.headers["content-type"]


def run_cli(url: str, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setenv("MF_DB_URL", url)
    return CliRunner().invoke(app, ["report", *args], catch_exceptions=False)


def test_the_commands_print_the_same_figures(
    rig: tuple[WebRig, str], base_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    web, url = rig
    out = run_cli(
        url, monkeypatch, "aging", "--date", str(AGING_DAY), "--json", "--as", "fin-a",
        "--xlsx", str(tmp_path / "aging.xlsx"),
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    with httpx.Client(base_url=base_url) as c:
        api = c.get(f"/api/v1/reports/aging?day={AGING_DAY}", headers=bearer(web, "fin-a")).json()
    assert json.loads(out.stdout) == api
    book = openpyxl.load_workbook(tmp_path / "aging.xlsx").active
    assert book.cell(1, 1).value == "项目" and book.max_row == len(api["rows"]) + 2
    funnel = run_cli(
        url, monkeypatch, "collections", "--from", str(FUNNEL[0]), "--to", str(FUNNEL[1]),
        "--json",
    )  # fmt: skip
    want = funnel_sql(web, *FUNNEL)
    assert json.loads(funnel.stdout)["overdue"] == want["overdue"]
    table = run_cli(url, monkeypatch, "expiring", "--date", str(EXPIRING_DAY), "--lang", "en")
    assert table.stdout.splitlines()[0].startswith("Tier\tLease\tTenant")
    assert [line.split("\t")[1] for line in table.stdout.splitlines()[1:]] == [
        "L-X1",
        "L-X2",
        "L-X3",
    ]
    for args, says in (
        (("occupancy", "--as", "legal-a"), "does not read the occupancy report"),
        (("aging", "--date", "2026-02-30"), "expected YYYY-MM-DD"),
        (("occupancy", "--from", "2026-01-01"), "both days"),
        (("aging", "--type", "castle"), "expected one of residential"),
        (("aging", "--xlsx", str(tmp_path / "missing" / "a.xlsx")), "cannot write"),
    ):
        bad = run_cli(url, monkeypatch, *args)
        assert bad.exit_code == 2 and says in bad.stderr, (args, bad.output)


def test_the_monthly_mail_arrives_once_with_the_workbook(
    rig: tuple[WebRig, str], smtp_receiver: SmtpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    web, url = rig
    smtp = ["--smtp-host", smtp_receiver.host, "--smtp-port", str(smtp_receiver.port)]
    refused = run_cli(url, monkeypatch, "recipients", "--site", "park-a", "--add", "a@x.test",
                      "--as", "fin-a")  # fmt: skip
    assert refused.exit_code == 2 and "may not change report recipients" in refused.stderr
    bad = run_cli(url, monkeypatch, "recipients", "--site", "park-a", "--add", "not an address")
    assert bad.exit_code == 2 and "expected an e-mail address" in bad.stderr
    added = run_cli(
        url, monkeypatch, "recipients", "--site", "park-a", "--add", "Boss@Reports.test"
    )
    assert json.loads(added.stdout) == {
        "site": "park-a", "recipients": ["boss@reports.test"],
        "languages": {"boss@reports.test": "zh-CN"},
    }  # fmt: skip
    first = json.loads(run_cli(url, monkeypatch, "mail", "--month", "2026-03", *smtp).stdout)
    assert (first["queued"], first["delivered"]) == (1, 1)
    again = json.loads(run_cli(url, monkeypatch, "mail", "--month", "2026-03", *smtp).stdout)
    assert (again["queued"], again["already_queued"], again["delivered"]) == (0, 1, 0)
    assert len(smtp_receiver.messages) == 1
    mail = smtp_receiver.messages[0]
    assert mail["To"] == "boss@reports.test" and "park-a 2026-03" in mail["Subject"]
    assert mail["X-Meterflow-Key"] == "report:park-a:2026-03:boss@reports.test"
    body = mail.get_body(preferencelist=("plain",)).get_content()
    aging = aging_sql(web, date(2026, 3, 31), "u.site_id = 'park-a'")
    total = sum(c for c, _ in aging.values())
    assert f"未收合计（元） ¥{total / 100:.2f}" in body
    (part,) = list(mail.iter_attachments())
    assert part.get_filename() == "reports-park-a-2026-03.xlsx"
    book = openpyxl.load_workbook(io.BytesIO(part.get_content()))
    assert book.sheetnames == ["出租率", "到期租约", "应收账龄", "催收漏斗"]
    aging_sheet = list(book["应收账龄"].iter_rows(min_row=2, values_only=True))
    assert round(aging_sheet[-1][10] * 100) == total
    # a recipient added later gets the month on the next run, in its own language; the
    # first does not again
    for args, says in ((["--language", "fr", "--add", "x@reports.test"], "expected one of"),
                       (["--language", "en"], "--add")):  # fmt: skip
        bad = run_cli(url, monkeypatch, "recipients", "--site", "park-a", *args)
        assert bad.exit_code == 2 and says in bad.stderr, bad.output
    run_cli(url, monkeypatch, "recipients", "--site", "park-a", "--add", "cfo@reports.test",
            "--language", "en")  # fmt: skip
    later = json.loads(run_cli(url, monkeypatch, "mail", "--month", "2026-03", *smtp).stdout)
    assert (later["queued"], later["delivered"]) == (1, 1)
    assert [m["To"] for m in smtp_receiver.messages] == ["boss@reports.test", "cfo@reports.test"]
    english = smtp_receiver.messages[1]
    assert english["Subject"] == "Lease reports park-a 2026-03"
    assert (
        f"Outstanding total (CNY) ¥{total / 100:.2f}"
        in english.get_body(preferencelist=("plain",)).get_content()
    )
    (part,) = list(english.iter_attachments())
    assert openpyxl.load_workbook(io.BytesIO(part.get_content())).sheetnames == [
        "Occupancy", "Expiring leases", "Receivables aging", "Collections funnel",
    ]  # fmt: skip
    assert run_cli(url, monkeypatch, "mail", "--month", "2026-3").exit_code == 2
    with web.sessions() as s:
        logged = s.execute(
            text("SELECT actor, subject FROM web_audit WHERE action = 'report_recipients'")
        ).all()
    assert [tuple(r) for r in logged] == [("cli", "report-recipients:park-a")] * 2


def test_an_admin_sets_the_recipients_through_the_api(
    rig: tuple[WebRig, str], base_url: str
) -> None:
    web, _ = rig
    with httpx.Client(base_url=base_url) as c:
        admin = bearer(web, "admin")
        body = {"site": "park-b", "add": ["Ops@Reports.test", "cfo@reports.test"]}
        reply = c.post("/api/v1/reports/recipients", json=body, headers=admin)
        assert reply.json() == {
            "recipients": {"park-b": ["cfo@reports.test", "ops@reports.test"]},
            "languages": {"park-b": {"cfo@reports.test": "zh-CN", "ops@reports.test": "zh-CN"}},
        }
        body = {"site": "park-b", "add": ["ops@reports.test"], "language": "en"}
        reply = c.post("/api/v1/reports/recipients", json=body, headers=admin)
        assert reply.json()["languages"]["park-b"]["ops@reports.test"] == "en"
        body = {"site": "park-b", "remove": ["cfo@reports.test"]}
        assert c.post("/api/v1/reports/recipients", json=body, headers=admin).status_code == 200
        listed = c.get("/api/v1/reports/recipients?site=park-b", headers=admin).json()
        assert listed == {
            "recipients": {"park-b": ["ops@reports.test"]},
            "languages": {"park-b": {"ops@reports.test": "en"}},
        }
        for bad, says in (
            ({"site": "park-b", "add": ["no-at-sign"]}, "expected an e-mail address"),
            ({"site": "park-z", "add": ["a@reports.test"]}, "not registered"),
        ):
            reply = c.post("/api/v1/reports/recipients", json=bad, headers=admin)
            assert reply.status_code == 422 and says in reply.json()["detail"]
        bad = {"site": "park-b", "add": ["a@reports.test"], "language": "fr"}
        reply = c.post("/api/v1/reports/recipients", json=bad, headers=admin)
        assert reply.status_code == 400 and "language" in reply.text, reply.text
        refused = c.post("/api/v1/reports/recipients", json=body, headers=bearer(web, "fin-b"))
        assert refused.status_code == 403
    logged = sql(
        web,
        "SELECT actor, detail FROM web_audit WHERE subject = 'report-recipients:park-b' "
        "ORDER BY id",
    )
    assert [actor for actor, _ in logged] == ["admin"] * 3
    assert json.loads(logged[0][1])["from"].startswith("api ")
    assert json.loads(logged[1][1])["after"]["languages"] == {
        "cfo@reports.test": "zh-CN", "ops@reports.test": "en",
    }  # fmt: skip
    assert json.loads(logged[2][1])["after"] == {
        "recipients": ["ops@reports.test"], "languages": {"ops@reports.test": "en"},
    }  # fmt: skip
