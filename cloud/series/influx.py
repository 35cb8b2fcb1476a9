"""Series store on InfluxDB: writes in line protocol, reads in InfluxQL on ``/query``.

Reads use InfluxQL on ``/query``, served by InfluxDB 1.x (Debian's 1.6 too), by 2.x through a
DBRP mapping and by 3.x. Writes go either to ``/write`` (1.x, including servers older than
1.8) or through influxdb-client's write API to ``/api/v2/write`` (1.8+, 2.x, 3.x).

Layout: one database (bucket); measurement ``reading`` holds points with a value,
``read_failure`` the failed reads (so that ``last(value)`` and ``last(quality)`` of an
interval always come from the same point); tags site, meter and quantity only, to bound
series cardinality; everything else is a field. A point is keyed by (site, meter, quantity,
time) — the tags and the time — and every query filters on ``site``, so two sites' meters with
equal ids never mix. ``source``, ``note`` and ``imported_by`` (of
manual readings) are fields too, and only written when not empty: a tag would make a manual
point and a gateway point at the same (meter, quantity, time) two points instead of one.

Reads are cut into chunks of meters, each one query with a deadline from its expected size
(``cloud.series.influx_budget``). A query that times out or fails while its answer is awaited
is never re-sent: it raises SeriesStoreError naming the chunk and the deadline. Only a
connection that could not be made (the query was never sent) is tried again. Writes do
re-send (up to 3 times, also after a read timeout): a point written twice replaces itself,
so a repeated write stores nothing twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Literal
from urllib.parse import urlencode

import numpy as np
import urllib3
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

from cloud.series.base import (
    MatrixQueries,
    SeriesFrame,
    SeriesPoint,
    SeriesStoreError,
    frame_from_rows,
    to_ns,
)
from cloud.series.influx_budget import Chunk, QueryBudget, meter_filter
from cloud.series.matrix import (
    DEFAULT_TZ,
    RegisterMatrix,
    interval_edges,
    last_per_interval,
    quality_codes,
)

MEASUREMENT = "reading"
FAILURES = "read_failure"
_FORM = "application/x-www-form-urlencoded"
_Points = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def influxql_string(text: str) -> str:
    """Quote ``text`` as an InfluxQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def influxql_identifier(text: str) -> str:
    """Quote ``text`` as an InfluxQL identifier (database, measurement)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# Line-protocol escaping (InfluxDB docs, "Line protocol: special characters"): in tag
# values , = and space (and control whitespace) take a backslash; in string field values
# " and \ do. Same tables as influxdb-client's Point, which the tests compare against; ours
# runs about 20 times faster, which matters at ingest rates.
_TAG = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ ", "\n": "\\n", "\t": "\\t", "\r": "\\r"})
_STRING = str.maketrans({'"': '\\"', "\\": "\\\\"})


def _tag(value: str) -> str:
    escaped = value.translate(_TAG)
    return escaped + " " if escaped.endswith("\\") else escaped  # a trailing \ would escape


def _float(value: float) -> str:
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def line_protocol(point: SeriesPoint) -> str:
    """One point as a line of InfluxDB line protocol (fields sorted by key, ns time; the
    manual-reading fields only when set, so gateway lines stay as short as before)."""
    return line_protocol_lines([point])[0]


def line_protocol_lines(points: list[SeriesPoint]) -> list[str]:
    """Points as lines of line protocol, one per point, as :func:`line_protocol` writes them.

    The hot path of every write (ingest encodes tens of thousands of points a second): the
    escaped series key (measurement and tags) and the escaped string fields are built once
    per distinct combination in the batch, since a gateway's batch repeats its gateway,
    quality, unit and round on every point; per point only the value and time are formatted.
    """
    keys: dict[tuple[str, str, str, bool], str] = {}
    texts: dict[tuple[str, ...], str] = {}
    lines = []
    for p in points:
        valued = p.value is not None
        key = (p.meter, p.quantity, p.site, valued)
        head = keys.get(key)
        if head is None:
            head = keys[key] = (
                f"{MEASUREMENT if valued else FAILURES},meter={_tag(p.meter)},"
                f"quantity={_tag(p.quantity)},site={_tag(p.site)} "
            )
        strings = (p.flags, p.gateway, p.imported_by, p.note, p.quality, p.round, p.source, p.unit)
        fields = texts.get(strings)
        if fields is None:
            fields = texts[strings] = _string_fields(p)
        if valued:
            lines.append(f"{head}{fields},value={_float(p.value)} {p.time_ns}")  # type: ignore[arg-type]
        else:
            lines.append(f"{head}{fields} {p.time_ns}")
    return lines


def _string_fields(point: SeriesPoint) -> str:
    return (
        f'flags="{point.flags.translate(_STRING)}",'
        f'gateway="{point.gateway.translate(_STRING)}",'
        + (f'imported_by="{point.imported_by.translate(_STRING)}",' if point.imported_by else "")
        + (f'note="{point.note.translate(_STRING)}",' if point.note else "")
        + f'quality="{point.quality.translate(_STRING)}",'
        f'round="{point.round.translate(_STRING)}",'
        + (f'source="{point.source.translate(_STRING)}",' if point.source else "")
        + f'unit="{point.unit.translate(_STRING)}"'
    )


class InfluxSeriesStore(MatrixQueries):
    """Points in one InfluxDB database (a bucket on 2.x, through its DBRP mapping).

    ``write_path="v1"`` posts line protocol to ``/write``; ``"v2"`` writes through
    influxdb-client's synchronous write API to ``/api/v2/write`` with ``token`` and ``org``
    (on 1.8+ the token is ``user:password`` and the bucket ``database/retention``).

    ``timeout_s`` (seconds) bounds each write request and a query sent through ``query()``;
    reads are cut and timed by ``budget`` (see ``QueryBudget``).
    """

    def __init__(
        self,
        url: str,
        database: str,
        *,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        org: str = "-",
        write_path: Literal["v1", "v2"] = "v1",
        timeout_s: float = 30.0,
        budget: QueryBudget | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.org = org
        self.timeout_s = timeout_s
        self.budget = budget or QueryBudget()
        headers = {}
        if token:
            headers["Authorization"] = f"Token {token}"
        elif username:
            headers.update(urllib3.make_headers(basic_auth=f"{username}:{password or ''}"))
        # Writes are idempotent per key: re-sent on 502/503/504 and after a timeout.
        self._http = urllib3.PoolManager(
            headers=headers,
            timeout=urllib3.Timeout(total=timeout_s),
            retries=urllib3.Retry(
                total=3, backoff_factor=0.2, allowed_methods=None, status_forcelist=(502, 503, 504)
            ),
        )
        # Queries: only a connection never made is tried again; a read error is raised as is.
        self._query_retries = urllib3.Retry(
            total=None,
            connect=self.budget.connect_retries,
            read=False,
            redirect=False,
            status=0,
            other=0,
            backoff_factor=0.2,
            allowed_methods=None,
            raise_on_status=False,
        )
        self._client: InfluxDBClient | None = None
        if write_path == "v2":
            self._client = InfluxDBClient(
                url=self.url, token=token or "", org=org, timeout=int(timeout_s * 1000)
            )
            self._v2_write = self._client.write_api(write_options=SYNCHRONOUS)

    def _post(
        self, path: str, body: bytes | str, content_type: str, params: dict[str, str] | None = None
    ) -> urllib3.BaseHTTPResponse:
        """A write request: up to 3 re-sends (idempotent), ``timeout_s`` seconds each."""
        url = f"{self.url}{path}" + (f"?{urlencode(params)}" if params else "")
        try:
            resp = self._http.request(
                "POST", url, body=body, headers={**self._http.headers, "Content-Type": content_type}
            )
        except urllib3.exceptions.HTTPError as exc:
            raise SeriesStoreError(f"POST {url}: {exc}") from exc
        if resp.status >= 300:
            raise SeriesStoreError(f"POST {url}: HTTP {resp.status}: {resp.data[:300]!r}")
        return resp

    def query(
        self, influxql: str, *, deadline_s: float | None = None, what: str = ""
    ) -> list[dict]:
        """Run InfluxQL (sent in the POST body, so it may be long) once; an error raises.

        ``deadline_s`` (seconds, default ``timeout_s``) covers connecting, the server's work
        and reading the answer. The query is sent at most once: a timeout, a connection
        lost while waiting and an HTTP error raise SeriesStoreError (``what`` names the
        query in the message); only a connection that could not be made is tried again.
        """
        deadline = self.timeout_s if deadline_s is None else deadline_s
        what = what or f"InfluxQL {influxql[:200]!r}"
        url = f"{self.url}/query"
        never = "not re-sent"
        started = time.monotonic()
        try:
            resp = self._http.request(
                "POST",
                url,
                body=urlencode({"db": self.database, "q": influxql, "epoch": "ns"}),
                headers={**self._http.headers, "Content-Type": _FORM},
                timeout=urllib3.Timeout(
                    total=deadline, connect=min(deadline, self.budget.connect_timeout_s)
                ),
                retries=self._query_retries,
                preload_content=False,
            )
        except urllib3.exceptions.MaxRetryError as exc:  # only connection errors are retried
            if not isinstance(exc.reason, urllib3.exceptions.ConnectTimeoutError):
                raise SeriesStoreError(f"{what}: POST {url} failed: {exc.reason}; {never}") from exc
            raise SeriesStoreError(
                f"{what}: cannot connect to {url} ({self.budget.connect_retries + 1} attempts"
                f" of {self.budget.connect_timeout_s:g} s): {exc.reason}"
            ) from exc
        except urllib3.exceptions.ConnectTimeoutError as exc:  # deadline before connect
            raise SeriesStoreError(
                f"{what}: cannot connect to {url} within the {deadline:.1f} s deadline: {exc}"
            ) from exc
        except urllib3.exceptions.ReadTimeoutError as exc:
            raise SeriesStoreError(
                f"{what}: no answer from {url} within the {deadline:.1f} s deadline; {never}"
            ) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise SeriesStoreError(f"{what}: POST {url} failed: {exc}; {never}") from exc
        complete, body = False, list[bytes]()
        try:
            while True:  # read1: one recv at a time, so the deadline is checked between them
                left = deadline - (time.monotonic() - started)
                if left <= 0:
                    raise SeriesStoreError(
                        f"{what}: answer from {url} not read within the {deadline:.1f} s "
                        f"deadline; {never}"
                    )
                sock = getattr(resp.connection, "sock", None)
                if sock is not None:
                    sock.settimeout(left)
                part = resp.read1(1 << 16)
                if not part:
                    break
                body.append(part)
            data = b"".join(body)
            complete = True
        except urllib3.exceptions.HTTPError as exc:
            if isinstance(exc, urllib3.exceptions.ReadTimeoutError) or "timed out" in str(exc):
                raise SeriesStoreError(
                    f"{what}: answer from {url} not read within the {deadline:.1f} s deadline;"
                    f" {never}"
                ) from exc
            raise SeriesStoreError(
                f"{what}: answer from {url} broken off after {sum(map(len, body))} bytes:"
                f" {exc}; {never}"
            ) from exc
        finally:
            if not complete:  # drop the connection: influxd then cancels the query
                resp.close()
            resp.release_conn()
        if resp.status >= 300:
            raise SeriesStoreError(f"{what}: POST {url}: HTTP {resp.status}: {data[:300]!r}")
        try:
            results = json.loads(data).get("results", [])
        except (ValueError, AttributeError) as exc:
            raise SeriesStoreError(
                f"{what}: POST {url}: not InfluxDB's JSON: {data[:200]!r}"
            ) from exc
        for result in results:
            if "error" in result:
                raise SeriesStoreError(f"{what}: InfluxQL error: {result['error']}")
        return results

    def create_database(self) -> None:
        self.query(f"CREATE DATABASE {influxql_identifier(self.database)}")

    def write(self, points: list[SeriesPoint]) -> None:
        if not points:
            return
        lines = line_protocol_lines(points)
        if self._client is not None:
            try:
                self._v2_write.write(
                    bucket=self.database,
                    org=self.org,
                    record=lines,
                    write_precision=WritePrecision.NS,
                )
            except Exception as exc:  # the client raises its own ApiException and urllib3's
                raise SeriesStoreError(
                    f"POST {self.url}/api/v2/write: {len(lines)} points: {exc}"
                ) from exc
            return
        self._post(
            "/write",
            "\n".join(lines).encode(),
            "text/plain; charset=utf-8",
            {"db": self.database, "precision": "ns"},
        )

    def _series_rows(
        self, influxql: str, deadline_s: float, what: str
    ) -> list[tuple[dict[str, str], list[str], list[list]]]:
        return [
            (series.get("tags", {}), series["columns"], series["values"])
            for result in self.query(influxql, deadline_s=deadline_s, what=what)
            for series in result.get("series", [])
        ]

    def read(
        self, meter: str, quantity: str, start: datetime, end: datetime, *, site: str
    ) -> SeriesFrame:
        """One meter's points; each of the two queries (values, failed reads) gets a
        deadline from the window's expected points (``budget.reading_interval_s``)."""
        start_ns, end_ns = to_ns(start), to_ns(end)
        (chunk,) = self.budget.chunks([meter], self.budget.points_per_meter(start_ns, end_ns))
        where = (
            f" WHERE site = {influxql_string(site)} AND meter = {influxql_string(meter)}"
            f" AND quantity = {influxql_string(quantity)} AND time >= {start_ns}"
            f" AND time < {end_ns}"
        )
        rows: list[tuple[int, float | None, str]] = []
        for measurement in (MEASUREMENT, FAILURES):
            value = "value" if measurement == MEASUREMENT else "quality"  # a field must exist
            q = f"SELECT {value}, quality FROM {influxql_identifier(measurement)}{where}"
            what = f"read of {measurement} " + chunk.describe(quantity, start_ns, end_ns)
            for _tags, cols, values in self._series_rows(q, chunk.deadline_s, what):
                it, iq = cols.index("time"), cols.index("quality")
                iv = cols.index("value") if measurement == MEASUREMENT else None
                rows.extend((r[it], None if iv is None else r[iv], r[iq]) for r in values)
        rows.sort(key=lambda r: r[0])
        return frame_from_rows(rows)

    def latest(
        self, meters: list[str], quantity: str, before_ns: int, *, site: str
    ) -> dict[str, tuple[int, float]]:
        """Per chunk of meters one ``last(value)`` query; its cost is taken as one returned
        point per meter plus one day of scanned points (the server reads the newest block of
        each series)."""
        day = self.budget.points_per_meter(0, 86_400 * 10**9)
        found = {}
        for chunk in self.budget.chunks(meters, 1 + self.budget.scan_weight * day):
            q = (
                f"SELECT last(value) FROM {influxql_identifier(MEASUREMENT)}"
                f" WHERE site = {influxql_string(site)} AND quantity = {influxql_string(quantity)}"
                f" AND time < {before_ns}"
                f"{meter_filter(chunk.meters, influxql_string)} GROUP BY meter"
            )
            what = "latest " + chunk.describe(quantity, None, before_ns)
            wanted = set(chunk.meters)
            for tags, cols, values in self._series_rows(q, chunk.deadline_s, what):
                if tags.get("meter") in wanted and values:
                    found[tags["meter"]] = (
                        values[0][cols.index("time")],
                        values[0][cols.index("last")],
                    )
        return found

    def raw_points(
        self, meters: list[str], quantity: str, start_ns: int, end_ns: int, *, site: str
    ) -> _Points:
        """(meter index, time ns, value, quality code) of points with a value, meters in
        chunks of expected size ``points_per_meter × meters ≤ budget.chunk_points``; only the
        listed meters' points in [start_ns, end_ns) are read. Order: by chunk, then meter."""
        per_meter = self.budget.points_per_meter(start_ns, end_ns) * (1 + self.budget.scan_weight)
        select = (
            f"SELECT value, quality FROM {influxql_identifier(MEASUREMENT)}"
            f" WHERE site = {influxql_string(site)} AND quantity = {influxql_string(quantity)}"
            f" AND time >= {start_ns} AND time < {end_ns}"
        )
        return self._chunked_points(
            meters,
            per_meter,
            lambda where: f"{select}{where} GROUP BY meter",
            lambda chunk: "raw_points " + chunk.describe(quantity, start_ns, end_ns),
        )

    def points_at(
        self, meters: list[str], quantity: str, times_ns: list[int], *, site: str
    ) -> _Points:
        """Points stamped exactly at one of ``times_ns``: per instant and chunk of meters one
        query for ``[t, t + 1 ns)``, the meter selected as a column rather than grouped by
        (one series per answer: a third of the time of ``GROUP BY meter`` for thousands of
        meters, measured on influxd 1.6). InfluxQL 1.x has no OR between time conditions
        (``time = a OR time = b`` selects nothing), and one range over the period would read
        every point between the instants.

        Meters too many for one query (more than ``budget.chunk_meters``: a close of a
        large site) are not filtered by the query: one query per instant reads the site's
        points at that instant (at most one per meter of the site; those of meters not asked
        for are dropped here). Cutting 10,000 meters into chunks made 20 queries per instant,
        each with a filter of 500 meters, at 2-3 times the cost of the points they read.

        Whole-site queries over three instants or more (a close's midnights) first ask the
        first instant alone, then count the site's points strictly between the first two
        instants: with fewer than half a point per meter read there (daily points: the
        midnights are all there is) the other instants are read by one range query from the
        second to the last, keeping the points exactly at an instant — the same points in
        one query instead of one per instant (decision 0036). Denser points (15-minute
        readings) are asked per instant as before; the count costs one day's scan."""
        index = {m: i for i, m in enumerate(meters)}
        unique = list(index)
        whole_site = len(unique) > self.budget.chunk_meters
        if whole_site:
            cost = float(len(unique))
            chunks = [Chunk(unique, 1, 1, len(unique), cost, self.budget.deadline_s(cost))]
        idx: list[int] = []
        times: list[int] = []
        values: list[float] = []
        quality: list[str] = []
        head = (
            f"SELECT value, quality, meter FROM {influxql_identifier(MEASUREMENT)}"
            f" WHERE site = {influxql_string(site)} AND quantity = {influxql_string(quantity)}"
        )

        def collect(select: str, chunk: Chunk, lo: int, hi: int, keep: set[int] | None) -> int:
            found = len(idx)
            where = "" if whole_site else meter_filter(chunk.meters, influxql_string)
            for _tags, cols, rows in self._series_rows(
                select + where, chunk.deadline_s, "points_at " + chunk.describe(quantity, lo, hi)
            ):
                it, iv, iq, im = (cols.index(c) for c in ("time", "value", "quality", "meter"))
                for r in rows:
                    i = index.get(r[im])
                    if i is not None and r[iv] is not None and (keep is None or r[it] in keep):
                        idx.append(i)
                        times.append(r[it])
                        values.append(r[iv])
                        quality.append(r[iq])
            return len(idx) - found

        instants = sorted(set(times_ns))
        for n, at in enumerate(instants):
            select = f"{head} AND time >= {at} AND time < {at + 1}"
            for chunk in chunks if whole_site else self.budget.chunks(meters, 1.0):
                read = collect(select, chunk, at, at + 1, None)
            if n == 0 and whole_site and len(instants) >= 3:
                between = self._count(site, quantity, at + 1, instants[1])
                if between < 0.5 * max(read, 1):  # sparse: the rest in one range query
                    lo, hi = instants[1], instants[-1] + 1
                    cost = float(len(unique) * (len(instants) - 1))
                    whole = Chunk(unique, 1, 1, len(unique), cost, self.budget.deadline_s(cost))
                    select = f"{head} AND time >= {lo} AND time < {hi}"
                    collect(select, whole, lo, hi, set(instants[1:]))
                    break
        return (
            np.array(idx, dtype=np.int64),
            np.array(times, dtype=np.int64),
            np.array(values, dtype=np.float64),
            quality_codes(quality),
        )

    def _count(self, site: str, quantity: str, start_ns: int, end_ns: int) -> int:
        """How many points of ``site``'s ``quantity`` lie in [start_ns, end_ns)."""
        q = (
            f"SELECT count(value) FROM {influxql_identifier(MEASUREMENT)}"
            f" WHERE site = {influxql_string(site)} AND quantity = {influxql_string(quantity)}"
            f" AND time >= {start_ns} AND time < {end_ns}"
        )
        deadline = self.budget.deadline_s(float(self.budget.chunk_points))
        for _tags, cols, rows in self._series_rows(q, deadline, f"count of {quantity} at {site}"):
            if rows:
                return int(rows[0][cols.index("count")] or 0)
        return 0

    def _chunked_points(
        self,
        meters: list[str],
        cost_per_meter: float,
        query: Callable[[str], str],
        what: Callable[[Chunk], str],
    ) -> _Points:
        index = {m: i for i, m in enumerate(meters)}
        parts = [
            self._grouped_points(
                index,
                self._series_rows(
                    query(meter_filter(chunk.meters, influxql_string)),
                    chunk.deadline_s,
                    what(chunk),
                ),
            )
            for chunk in self.budget.chunks(meters, cost_per_meter)
        ]
        parts = [p for p in parts if len(p[0])]
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0), np.zeros(0, dtype=np.uint8)
        if len(parts) == 1:
            return parts[0]
        return tuple(np.concatenate(col) for col in zip(*parts, strict=True))  # type: ignore[return-value]

    @staticmethod
    def _grouped_points(
        index: dict[str, int], series: list[tuple[dict[str, str], list[str], list[list]]]
    ) -> _Points:
        parts = []
        for tags, cols, values in series:
            i = index.get(tags.get("meter", ""))
            if i is None or not values:
                continue
            it, iv, iq = cols.index("time"), cols.index("value"), cols.index("quality")
            rows = [r for r in values if r[iv] is not None]
            parts.append(
                (
                    np.full(len(rows), i, dtype=np.int64),
                    np.fromiter((r[it] for r in rows), dtype=np.int64, count=len(rows)),
                    np.fromiter((r[iv] for r in rows), dtype=np.float64, count=len(rows)),
                    quality_codes([r[iq] for r in rows]),
                )
            )
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0), np.zeros(0, dtype=np.uint8)
        return tuple(np.concatenate(col) for col in zip(*parts, strict=True))  # type: ignore[return-value]

    def register_matrix(
        self,
        meters: list[str],
        quantity: str,
        start: datetime,
        end: datetime,
        step: str,
        tz: str = DEFAULT_TZ,
        *,
        site: str,
    ) -> RegisterMatrix:
        """Server-side ``last()`` per ``GROUP BY time()`` bucket when the intervals are of one
        length (always, unless a day step crosses a daylight-saving change), else raw; in
        chunks of meters, a chunk's cost being its buckets (returned) plus its raw points
        times ``budget.scan_weight`` (scanned)."""
        edges = interval_edges(start, end, step, tz)
        widths = np.diff(edges)
        if not (widths == widths[0]).all():
            return super().register_matrix(meters, quantity, start, end, step, tz, site=site)
        width = int(widths[0])
        offset = int(edges[0]) % width
        first, last = int(edges[0]), int(edges[-1])
        scanned = self.budget.points_per_meter(first, last)
        per_meter = min(len(widths), scanned) + self.budget.scan_weight * scanned
        select = (
            f"SELECT last(value) AS value, last(quality) AS quality"
            f" FROM {influxql_identifier(MEASUREMENT)}"
            f" WHERE site = {influxql_string(site)} AND quantity = {influxql_string(quantity)}"
            f" AND time >= {first} AND time < {last}"
        )
        idx, times, values, quality = self._chunked_points(
            meters,
            per_meter,
            lambda where: f"{select}{where} GROUP BY time({width}ns, {offset}ns), meter fill(none)",
            lambda chunk: f"register_matrix ({step}) " + chunk.describe(quantity, first, last),
        )
        # Bucket times are bucket starts: the interval edges themselves.
        grid_v, grid_q = last_per_interval(idx, times, values, quality, len(meters), edges)
        return RegisterMatrix(tuple(meters), edges, grid_v, grid_q)

    def close(self) -> None:
        self._http.clear()
        if self._client is not None:
            self._client.close()
