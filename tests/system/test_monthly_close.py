"""The monthly close end to end on real servers: simulated DL/T645 meters → gateway → mosquitto
→ ingest → influxd, the registry on PostgreSQL; then only the product's commands: ``site
import``, ``close``, ``run review`` / ``approve`` by two accounts (the same account refused),
``post``; the tenant page shows the posted statement. Its cents equal those of the same
problem written as a case file and run through ``meterflow cloud apportion`` — both are built
from one source: the park's definition and its simulated meters' registers."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import yaml
from click.testing import Result
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from cloud.apportion.case.canonical import plain
from cloud.gateways.provisioning import CloudSigner, ProvisioningService
from cloud.registry.db import open_registry
from cloud.series.influx import InfluxSeriesStore
from cloud.staff.accounts import AccountService, Role
from cloud.statements.links import StatementKey, WebSecret
from cloud.web.app import create_app
from cloud.web.deps import ApiServices, WebServices
from meterflow.cli.cloud import cloud_app
from meterflow.demo import ZONE, meter_month, utility_bill
from meterflow.scenarios import demo_park as park
from simulators.load import SimClock
from tests.support.browser import serve

PASSWORD = "correct horse battery staple"
FIRST, DAYS = date(2026, 11, 1), 3


def test_the_month_closes_on_real_servers_with_the_case_files_cents(
    tmp_path: Path, mosquitto_server: Any, fresh_influx_db: Any, fresh_postgres_url: str
) -> None:
    influx_url, database = fresh_influx_db
    registry = open_registry(fresh_postgres_url)
    store = InfluxSeriesStore(influx_url, database)
    start = datetime(FIRST.year, FIRST.month, FIRST.day, tzinfo=ZONE)
    clock = SimClock(start.astimezone(UTC))
    stored, rejected = meter_month(
        mosquitto_server.url, registry, store, clock, DAYS, 12, tmp_path, lambda _line: None
    )
    assert (stored, rejected) == (8 * (DAYS * 2 + 1), 0)
    end = FIRST + timedelta(days=DAYS)

    # the same problem as a case file, from the park's definition and the meters' registers
    loads = park.loads(start.astimezone(UTC) - timedelta(days=365))
    site = park.site_file(date(2026, 1, 1))
    bill = utility_bill(store, FIRST, end)
    case = dict(site, period={"start": FIRST, "end": end}, bill=bill, readings={})
    for m in park.METERS:
        case["readings"][m.id] = {
            FIRST + timedelta(days=d): loads[m.id].energy_import_kwh(start + timedelta(days=d))
            for d in range(DAYS + 1)
        }
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(plain(case), allow_unicode=True))
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(plain(site), allow_unicode=True))
    (tmp_path / "bill.yaml").write_text(yaml.safe_dump({"bill": bill}))

    data = tmp_path / "cloud"
    data.mkdir()
    signer = CloudSigner.load_or_create(data / "cloud.key")
    accounts = AccountService(registry)
    for name in ("fin-a", "fin-b"):
        accounts.create_account(name, PASSWORD, Role.FINANCE, [park.SITE])
    env = {
        "MF_DATA_DIR": str(data),
        "MF_DB_URL": fresh_postgres_url,
        "MF_SERIES_BACKEND": "influxdb",
        "MF_INFLUX_URL": influx_url,
        "MF_INFLUX_BUCKET": database,
    }

    def cli(*args: str) -> Result:
        result = CliRunner().invoke(cloud_app, list(args), env=env)
        assert "Traceback" not in result.output, result.output
        return result

    expected = cli("apportion", str(tmp_path / "case.yaml"), "--json")
    assert expected.exit_code == 0, expected.output
    expected_totals = json.loads(expected.output)["totals"]

    assert cli("site", "import", str(tmp_path / "site.yaml")).exit_code == 0
    closed = cli(
        "close", "--site", park.SITE, "--from", FIRST.isoformat(), "--to", end.isoformat(),
        "--bill", str(tmp_path / "bill.yaml"), "--as", "fin-a", "--json",
    )  # fmt: skip
    assert closed.exit_code == 0, closed.output
    doc = json.loads(closed.output)
    assert doc["totals"] == expected_totals
    assert doc["bill_cents"] == doc["lines_cents"] == int(Decimal(bill["amounts"]["total"]) * 100)
    run = doc["run"]
    assert cli("run", "review", run, "--as", "fin-a").exit_code == 0
    refused = cli("run", "approve", run, "--as", "fin-a")
    assert refused.exit_code == 2 and "(four eyes)" in refused.output
    assert cli("run", "approve", run, "--as", "fin-b").exit_code == 0
    assert cli("run", "post", run, "--as", "fin-b").exit_code == 0

    key = serialization.load_pem_private_key((data / "cloud.key").read_bytes(), password=None)
    web = WebServices.build(
        ProvisioningService(registry, signer), signing_key=key, secret=WebSecret.generate()
    )
    with serve(create_app(ApiServices(ProvisioningService(registry, signer), web=web))) as url:
        for unit, (_name, _b, _f, _a, tenant, _tn) in park.UNITS.items():
            if tenant is None:
                continue
            path = web.links.link_for(StatementKey(run, unit, tenant)).path()
            page = httpx.get(url + path, timeout=30)
            assert page.status_code == 200
            shown = re.search(r'data-testid="total" data-cents="(-?\d+)"', page.text)
            assert shown is not None and int(shown.group(1)) == expected_totals[tenant], unit
    store.close()
    registry.kw["bind"].dispose()
