"""Series store on InfluxDB: line protocol on ``/write``, InfluxQL on ``/query``.

These two endpoints are served by InfluxDB 1.x (including Debian's 1.6), by 2.x through its
1.x compatibility API and by 3.x, so one implementation reaches every deployment. Tags are
kept to site, meter and quantity to bound series cardinality; everything else is a field.
"""

from __future__ import annotations

import json
from datetime import datetime
from urllib.parse import urlencode

import urllib3
from influxdb_client import Point, WritePrecision

from cloud.series.base import SeriesFrame, SeriesPoint, SeriesStoreError, frame_from_rows, to_ns

MEASUREMENT = "reading"


def influxql_string(text: str) -> str:
    """Quote ``text`` as an InfluxQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def influxql_identifier(text: str) -> str:
    """Quote ``text`` as an InfluxQL identifier (database, measurement)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def line_protocol(point: SeriesPoint) -> str:
    """One point as a line of InfluxDB line protocol, escaped by influxdb-client's Point."""
    p = (
        Point(MEASUREMENT)
        .tag("site", point.site)
        .tag("meter", point.meter)
        .tag("quantity", point.quantity)
        .field("quality", point.quality)
        .field("unit", point.unit)
        .field("gateway", point.gateway)
        .field("round", point.round)
        .time(point.time_ns, WritePrecision.NS)
    )
    if point.value is not None:
        p.field("value", float(point.value))
    return p.to_line_protocol()


class InfluxSeriesStore:
    """Points in one InfluxDB database (a bucket on 2.x, through its DBRP mapping)."""

    def __init__(
        self,
        url: str,
        database: str,
        *,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.database = database
        headers = {}
        if token:
            headers["Authorization"] = f"Token {token}"
        elif username:
            headers.update(urllib3.make_headers(basic_auth=f"{username}:{password or ''}"))
        self._http = urllib3.PoolManager(
            headers=headers,
            timeout=urllib3.Timeout(total=timeout_s),
            retries=urllib3.Retry(
                total=3, backoff_factor=0.2, allowed_methods=None, status_forcelist=(502, 503, 504)
            ),
        )

    def _request(
        self, method: str, path: str, params: dict[str, str], body: bytes | None = None
    ) -> urllib3.BaseHTTPResponse:
        where = f"{method} {self.url}{path}"
        try:
            resp = self._http.request(method, f"{self.url}{path}?{urlencode(params)}", body=body)
        except urllib3.exceptions.HTTPError as exc:
            raise SeriesStoreError(f"{where}: {exc}") from exc
        if resp.status >= 300:
            raise SeriesStoreError(f"{where}: HTTP {resp.status}: {resp.data[:300]!r}")
        return resp

    def query(self, influxql: str) -> list[dict]:
        """Run InfluxQL and return the ``results`` list; an error in a result raises."""
        resp = self._request("POST", "/query", {"db": self.database, "q": influxql, "epoch": "ns"})
        results = json.loads(resp.data).get("results", [])
        for result in results:
            if "error" in result:
                raise SeriesStoreError(f"InfluxQL {influxql!r}: {result['error']}")
        return results

    def create_database(self) -> None:
        self.query(f"CREATE DATABASE {influxql_identifier(self.database)}")

    def write(self, points: list[SeriesPoint]) -> None:
        if not points:
            return
        body = "\n".join(line_protocol(p) for p in points).encode()
        self._request("POST", "/write", {"db": self.database, "precision": "ns"}, body)

    def read(self, meter: str, quantity: str, start: datetime, end: datetime) -> SeriesFrame:
        q = (
            f"SELECT value, quality FROM {influxql_identifier(MEASUREMENT)}"
            f" WHERE meter = {influxql_string(meter)} AND quantity = {influxql_string(quantity)}"
            f" AND time >= {to_ns(start)} AND time < {to_ns(end)} ORDER BY time ASC"
        )
        rows: list[tuple[int, float | None, str]] = []
        for result in self.query(q):
            for series in result.get("series", []):
                cols = series["columns"]
                it, iv, iq = cols.index("time"), cols.index("value"), cols.index("quality")
                rows.extend((r[it], r[iv], r[iq]) for r in series["values"])
        return frame_from_rows(rows)

    def close(self) -> None:
        self._http.clear()
