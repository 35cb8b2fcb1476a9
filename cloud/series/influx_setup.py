"""Preparing an InfluxDB for meterflow: the database (1.x) or bucket + DBRP mapping (2.x).

The server's version comes from ``/ping``'s ``X-Influxdb-Version`` header. On 1.x the
database is created with InfluxQL (idempotent). On 2.x the bucket is created if missing and
a DBRP mapping ``database/autogen → bucket`` is added, so that InfluxQL reads on ``/query``
reach it.
"""

from __future__ import annotations

from dataclasses import dataclass

import urllib3
from influxdb_client import InfluxDBClient
from influxdb_client.domain.dbrp_create import DBRPCreate
from influxdb_client.service.dbr_ps_service import DBRPsService

from cloud.series.base import SeriesStoreError
from cloud.series.influx import InfluxSeriesStore


@dataclass(frozen=True)
class SetupReport:
    version: str
    actions: list[str]


def server_version(url: str, timeout_s: float = 10.0) -> str:
    try:
        resp = urllib3.request("GET", f"{url.rstrip('/')}/ping", timeout=timeout_s)
    except urllib3.exceptions.HTTPError as exc:
        raise SeriesStoreError(f"GET {url}/ping: {exc}") from exc
    version = resp.headers.get("X-Influxdb-Version", "")
    if resp.status not in (200, 204) or not version:
        raise SeriesStoreError(f"GET {url}/ping: HTTP {resp.status}, not an InfluxDB server")
    return version


def influx_setup(
    url: str,
    database: str,
    *,
    token: str | None = None,
    org: str = "-",
    username: str | None = None,
    password: str | None = None,
) -> SetupReport:
    """Make ``database`` ready for writes and InfluxQL reads; safe to run again."""
    version = server_version(url)
    if version.lstrip("v").startswith("1."):
        InfluxSeriesStore(url, database, username=username, password=password).create_database()
        return SetupReport(version, [f"database {database!r} present"])
    if not version.lstrip("v").startswith("2."):
        return SetupReport(
            version,
            [
                f"InfluxDB {version}: create database {database!r} with "
                "the server's own tools; nothing done"
            ],
        )
    with InfluxDBClient(url=url, token=token or "", org=org) as client:
        buckets = client.buckets_api()
        bucket = buckets.find_bucket_by_name(database)
        actions = []
        if bucket is None:
            bucket = buckets.create_bucket(bucket_name=database, org=org)
            actions.append(f"bucket {database!r} created")
        service = DBRPsService(client.api_client)
        existing = service.get_dbrps(org=org, bucket_id=bucket.id).content or []
        if not any(m.database == database for m in existing):
            service.post_dbrp(
                DBRPCreate(
                    org=org,
                    bucket_id=bucket.id,
                    database=database,
                    retention_policy="autogen",
                    default=True,
                )
            )
            actions.append(f"DBRP mapping {database}/autogen → bucket {database!r} created")
        return SetupReport(version, actions or ["bucket and DBRP mapping present"])
