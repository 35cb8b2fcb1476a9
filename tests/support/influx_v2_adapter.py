"""Test-only HTTP adapter in front of a real InfluxDB 1.6: ``/api/v2/write`` → ``/write``.

Debian's influxd 1.6 has no ``/api/v2/*``; this adapter lets the v2 write path of
influxdb-client be tested against the real server (docs/architecture.md, "Real components").
Every other path is passed through unchanged. Bucket ``db/rp`` maps to ``db=db&rp=rp``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import urllib3


def _handler(upstream: str, calls: list[str]) -> type[BaseHTTPRequestHandler]:
    http = urllib3.PoolManager()

    class Adapter(BaseHTTPRequestHandler):
        def log_message(self, *_args: object) -> None:  # keep test output clean
            pass

        def _forward(self, method: str) -> None:
            parts = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            calls.append(f"{method} {parts.path}")
            path, query = parts.path, parts.query
            if parts.path == "/api/v2/write":
                args = parse_qs(parts.query)
                db, _, rp = args.get("bucket", [""])[0].partition("/")
                mapped = {"db": db, "precision": args.get("precision", ["ns"])[0]}
                if rp:
                    mapped["rp"] = rp
                path, query = "/write", urlencode(mapped)
            headers = {
                k: v
                for k, v in self.headers.items()
                if k.lower() in ("content-type", "content-encoding")
            }
            resp = http.request(
                method, f"{upstream}{path}?{query}", body=body or None, headers=headers
            )
            self.send_response(resp.status)
            for key in ("Content-Type", "X-Influxdb-Version"):
                if key in resp.headers:
                    self.send_header(key, resp.headers[key])
            self.send_header("Content-Length", str(len(resp.data)))
            self.end_headers()
            self.wfile.write(resp.data)

        def do_POST(self) -> None:
            self._forward("POST")

        def do_GET(self) -> None:
            self._forward("GET")

    return Adapter


@contextmanager
def influx_v2_adapter(upstream: str) -> Iterator[tuple[str, list[str]]]:
    """Serve the adapter on 127.0.0.1; yields (base URL, list of 'METHOD path' seen)."""
    calls: list[str] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(upstream.rstrip("/"), calls))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", calls
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
