"""InfluxDB reads in chunks of meters with deadlines: same answers as SQLite, only the asked
meters' points read, and a query past its deadline raised, never sent again."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import numpy as np
import pytest
import urllib3

from cloud.series.base import SeriesPoint, SeriesStoreError, to_ns
from cloud.series.influx import InfluxSeriesStore
from cloud.series.influx_budget import QueryBudget
from cloud.series.sqlite import SqliteSeriesStore
from tests.support.factories import T0

# Plain ids, ids the regex must escape, and ids that need ``meter = '...'`` terms.
METERS = [f"M{i:02d}" for i in range(9)] + ["a.b-c", "unit 3,b=4", "a'b\\c", 'q"uo/te']


def points() -> list[SeriesPoint]:
    """Four days of readings every 70-90 minutes; some failed, some estimated."""
    out = []
    for n, meter in enumerate(METERS[:-1]):  # the last meter has no points at all
        for k in range(0, 6 * 24 * 4, 7 + n % 3):
            value = None if k % 11 == 0 else 100.0 * n + k / 4
            quality = "timeout" if value is None else ("estimated" if k % 5 == 0 else "good")
            time_ns = to_ns(T0 + timedelta(minutes=10 * k))
            out.append(SeriesPoint("s1", meter, "energy_import", time_ns, value, quality))
    return out


def sort_points(arrays: tuple[np.ndarray, ...]) -> list[tuple]:
    return sorted(zip(*(a.tolist() for a in arrays), strict=True))


@contextmanager
def recording_relay(upstream: str) -> Iterator[tuple[str, list[tuple[str, set[str]]]]]:
    """An HTTP relay to influxd recording, per /query, the InfluxQL and the meters whose
    series came back; yields (base URL, records)."""
    records: list[tuple[str, set[str]]] = []
    http = urllib3.PoolManager()

    class Relay(BaseHTTPRequestHandler):
        def log_message(self, *_args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            resp = http.request(
                "POST",
                f"{upstream}{self.path}",
                body=body,
                headers={"Content-Type": self.headers["Content-Type"]},
            )
            if self.path.startswith("/query"):
                series = [s for r in json.loads(resp.data)["results"] for s in r.get("series", [])]
                q = parse_qs(body.decode())["q"][0]
                records.append((q, {s.get("tags", {}).get("meter", "") for s in series}))
            self.send_response(resp.status)
            self.send_header("Content-Length", str(len(resp.data)))
            self.end_headers()
            self.wfile.write(resp.data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Relay)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", records
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_chunked_reads_answer_like_sqlite_and_read_only_the_asked_meters(fresh_influx_db, tmp_path):
    base_url, db = fresh_influx_db
    sqlite = SqliteSeriesStore(tmp_path / "s.sqlite")
    sqlite.write(points())
    InfluxSeriesStore(base_url, db).write(
        [*points(), SeriesPoint("s1", "NOT-ASKED", "energy_import", to_ns(T0), 1.0, "good")]
    )
    # 3 meters a query whatever the window: the 13 meters (one listed twice) need 5 queries.
    budget = QueryBudget(chunk_meters=3, reading_interval_s=600)
    asked = [*METERS[:5], "M00", *METERS[5:]]
    start, end = T0 + timedelta(hours=7), T0 + timedelta(days=3, hours=7)
    with recording_relay(base_url) as (url, records):
        influx = InfluxSeriesStore(url, db, budget=budget)

        got = influx.raw_points(asked, "energy_import", to_ns(start), to_ns(end), site="s1")
        want = sqlite.raw_points(asked, "energy_import", to_ns(start), to_ns(end), site="s1")
        assert len(want[0]) > 500 and sort_points(got) == sort_points(want)
        assert len(records) == 5
        assert all(returned <= set(METERS) for _q, returned in records)
        assert set().union(*(returned for _q, returned in records)) == set(METERS[:-1])

        for step in ("1h", "1d"):
            a = influx.consumption_matrix(asked, "energy_import", start, end, step, site="s1")
            b = sqlite.consumption_matrix(asked, "energy_import", start, end, step, site="s1")
            np.testing.assert_array_equal(a.usage, b.usage)
            np.testing.assert_array_equal(a.mask, b.mask)
        before = to_ns(T0 + timedelta(days=2))
        assert influx.latest(asked, "energy_import", before, site="s1") == sqlite.latest(
            asked, "energy_import", before, site="s1"
        )
        for meter in METERS:
            a_frame, b_frame = (
                influx.read(meter, "energy_import", start, end, site="s1"),
                sqlite.read(meter, "energy_import", start, end, site="s1"),
            )
            np.testing.assert_array_equal(a_frame.times_ns, b_frame.times_ns)
            np.testing.assert_array_equal(a_frame.values, b_frame.values)
            assert a_frame.quality.tolist() == b_frame.quality.tolist()
    assert all("NOT-ASKED" not in returned for _q, returned in records)
    assert influx.raw_points([], "energy_import", 0, to_ns(end), site="s1")[0].size == 0
    sqlite.close()


def test_a_chunk_is_sized_by_its_expected_points():
    budget = QueryBudget(chunk_points=1000, chunk_meters=50, reading_interval_s=900)
    day = budget.points_per_meter(0, 86_400 * 10**9)
    assert day == 96
    chunks = list(budget.chunks([f"m{i}" for i in range(100)], 2 * day))  # 192 points each
    assert [len(c.meters) for c in chunks] == [5] * 20  # 5 × 192 ≤ 1000 < 6 × 192
    assert chunks[0].deadline_s == pytest.approx(budget.base_s + budget.per_point_s * 5 * 192)
    assert [len(c.meters) for c in budget.chunks(["a", "b", "a"], 1.0)] == [2]
    assert [len(c.meters) for c in budget.chunks(["a", "b"], 10**9)] == [1, 1]  # never 0
    assert budget.deadline_s(10**12) == budget.max_s


@contextmanager
def unhelpful_server(answer: bytes | None) -> Iterator[tuple[str, dict[str, int]]]:
    """A TCP server that accepts and reads requests; with ``answer`` None it never replies,
    else it sends ``answer`` then dribbles a byte every 0.1 s, never ending the body.
    Yields (base URL, counts of connections and requests received)."""
    listener = socket.create_server(("127.0.0.1", 0))
    counts = {"connections": 0, "requests": 0}
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        reply = answer
        with conn:
            conn.settimeout(0.1)
            received = b""
            while not stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    data = None
                if data == b"":
                    return
                if data:
                    received += data
                    counts["requests"] = received.count(b"POST /query")
                if reply is not None and counts["requests"]:
                    try:
                        conn.sendall(reply or b" ")
                    except OSError:
                        return
                    reply = b""

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            counts["connections"] += 1
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", counts
    finally:
        stop.set()
        thread.join(5)
        listener.close()


SLOW = QueryBudget(base_s=0.5, per_point_s=0.0, chunk_meters=4)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (None, "no answer from"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n{", "not read within"),
    ],
    ids=["silent", "dribbling"],
)
def test_a_query_past_its_deadline_is_raised_and_not_sent_again(answer, expected):
    with unhelpful_server(answer) as (url, counts):
        store = InfluxSeriesStore(url, "db", budget=SLOW)
        started = time.monotonic()
        with pytest.raises(SeriesStoreError) as caught:
            store.raw_points(
                [f"M{i:02d}" for i in range(10)],
                "energy_import",
                to_ns(T0),
                to_ns(T0) + 10**12,
                site="s1",
            )
        elapsed = time.monotonic() - started
        time.sleep(1.0)  # room for a re-send, were there one
        assert counts == {"connections": 1, "requests": 1}
    message = str(caught.value)
    assert 0.5 <= elapsed < 2.0
    assert expected in message and "0.5 s deadline" in message and "not re-sent" in message
    assert "meters M00…M03 (4 of 10, chunk 1/3), energy_import, [2026-" in message


def test_a_refused_connection_is_tried_again_then_raised():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    store = InfluxSeriesStore(f"http://127.0.0.1:{port}", "db", budget=QueryBudget())
    with pytest.raises(SeriesStoreError, match=r"latest meters M1 .*cannot connect.*3 attempts"):
        store.latest(["M1"], "energy_import", to_ns(T0), site="s1")


def test_points_at_instants_answer_like_sqlite_and_like_one_window_per_instant(
    fresh_influx_db, tmp_path
):
    base_url, db = fresh_influx_db
    sqlite = SqliteSeriesStore(tmp_path / "s.sqlite")
    sqlite.write(points())
    influx = InfluxSeriesStore(base_url, db, budget=QueryBudget(chunk_meters=4))
    influx.write(points())
    stamps = sorted({p.time_ns for p in points()})
    instants = [stamps[0], stamps[7], stamps[30], stamps[-1], stamps[-1] + 1]  # the last: none
    asked = list(METERS[:9])
    want = sqlite.points_at(asked, "energy_import", instants, site="s1")
    assert 0 < len(want[0]) <= 4 * len(asked)
    windows = [sqlite.raw_points(asked, "energy_import", t, t + 1, site="s1") for t in instants]
    by_window = tuple(np.concatenate([w[i] for w in windows]) for i in range(4))
    assert sort_points(want) == sort_points(by_window)
    assert sort_points(
        influx.points_at(asked, "energy_import", instants, site="s1")
    ) == sort_points(want)
    assert influx.points_at(asked, "energy_import", [], site="s1")[0].size == 0
    sqlite.close()


def test_points_at_daily_points_of_a_whole_site_take_one_range_query_after_the_first(
    fresh_influx_db, tmp_path
):
    """Daily midnight points (and one stray point off the instants, one failed read): the
    first instant alone, a count between the first two, then one range query for the rest
    (decision 0036) — the same points as SQLite and as one query per instant."""
    base_url, db = fresh_influx_db
    day = 86_400 * 10**9
    t0 = to_ns(T0)
    instants = [t0 + d * day for d in range(6)]
    daily = [
        SeriesPoint("s1", m, "energy_import", t, 10.0 * n + k, "good")
        for n, m in enumerate(METERS[:6])
        for k, t in enumerate(instants)
        if (n, k) != (2, 3)  # one meter lacks one day
    ]
    daily += [
        SeriesPoint("s1", "M00", "energy_import", t0 + 3 * day + 7, 99.0, "good"),  # not at one
        SeriesPoint("s1", "M01", "energy_import", t0 + 4 * day + 5, None, "timeout"),  # failed
        SeriesPoint("s1", "M01", "energy_import_t1", t0 + 2 * day, 5.0, "good"),  # other quantity
        SeriesPoint("s1", "NOT-ASKED", "energy_import", t0 + day, 1.0, "good"),
    ]
    sqlite = SqliteSeriesStore(tmp_path / "s.sqlite")
    sqlite.write(daily)
    asked = list(METERS[:5])
    with recording_relay(base_url) as (url, records):
        influx = InfluxSeriesStore(url, db, budget=QueryBudget(chunk_meters=2))
        influx.write(daily)
        got = influx.points_at(asked, "energy_import", instants, site="s1")
        queries = [q for q, _meters in records if q.startswith("SELECT")]
    want = sqlite.points_at(asked, "energy_import", instants, site="s1")
    assert len(want[0]) == 5 * 6 - 1
    assert sort_points(got) == sort_points(want)
    assert len(queries) == 3, queries
    assert "count(value)" in queries[1]
    assert f"time >= {instants[1]} AND time < {instants[-1] + 1}" in queries[2]
    sqlite.close()
