"""Real mosquitto, InfluxDB 1.x and PostgreSQL servers for tests, on 127.0.0.1.

The servers are started and stopped by the scripts in ``deploy/local/`` (usable by hand too);
this module wraps them for pytest. The fixtures themselves live in ``tests/conftest.py``:

``mosquitto_server`` (session)   -> :class:`MosquittoServer` (``.stop()`` / ``.start()``)
``influxdb_server`` (session)    -> :class:`InfluxServer`
``postgres_server`` (session)    -> :class:`PostgresServer`
``fresh_postgres_url`` (test)    -> SQLAlchemy URL of a new empty database, dropped afterwards
``fresh_influx_db`` (test)       -> :class:`InfluxDatabase` ``(base_url, db_name)``, dropped after

``tests/support/secured_broker.py`` runs mosquitto with the shipped ACL and a password file.

A server starts only when a test asks for its fixture. When its binary is missing the test is
skipped, naming the binary and the install command; with ``CI=true`` it fails instead.
Every server started here is also watched by a small watchdog (``MF_SERVER_WATCH_PID``) so
that it is stopped even when pytest itself is killed.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, NoReturn

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = REPO_ROOT / "deploy" / "local"
INSTALL_SCRIPT = SCRIPTS / "install-servers.sh"
HOST = "127.0.0.1"

# exit code of the start scripts when the port is taken by another process
EXIT_PORT_BUSY = 3
START_ATTEMPTS = 4
SCRIPT_TIMEOUT = 90.0

#: seconds each server took to start in this session (shown in pytest's summary)
STARTUP_TIMES: dict[str, float] = {}


class ServerError(RuntimeError):
    """A start or stop script failed; the message holds its output (with the log tail)."""


# --------------------------------------------------------------------------- binaries


def _first_executable(*candidates: str | None) -> str | None:
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def find_mosquitto() -> str | None:
    return _first_executable(
        os.environ.get("MOSQUITTO_BIN"),
        shutil.which("mosquitto"),
        "/usr/sbin/mosquitto",
        "/usr/local/sbin/mosquitto",
    )


def find_influxd() -> str | None:
    return _first_executable(
        os.environ.get("INFLUXD_BIN"), shutil.which("influxd"), "/usr/bin/influxd"
    )


def find_pg_bindir() -> str | None:
    """Directory with pg_ctl/initdb/postgres: PG_BINDIR, pg_ctl on PATH, newest Debian one."""

    def complete(d: str) -> bool:
        return all(os.access(os.path.join(d, b), os.X_OK) for b in ("pg_ctl", "initdb", "postgres"))

    env = os.environ.get("PG_BINDIR")
    if env and complete(env):
        return env
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        d = os.path.dirname(os.path.realpath(pg_ctl))
        if complete(d):
            return d

    def version_key(d: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", Path(d).parent.name))

    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version_key, reverse=True):
        if complete(d):
            return d
    return None


def missing_server(binary: str, package: str) -> NoReturn:
    """Skip the test for a missing server binary; fail instead when ``CI=true``."""
    message = (
        f"{binary} is not installed: install it with `sudo {INSTALL_SCRIPT}` "
        f"(or `sudo apt-get install -y --no-install-recommends {package}`)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def require(finder, binary: str, package: str) -> str:
    found = finder()
    if not found:
        missing_server(binary, package)
    return found


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def cloud_api(
    env: dict[str, str], log: Path, *args: str, wait_s: float = 30.0
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``meterflow cloud api`` (the real command) on a free 127.0.0.1 port with ``env`` and
    ``args``, its output in ``log``; yields (process, base URL) once it listens, and stops it
    (SIGTERM, then SIGKILL) at the end."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "meterflow", "cloud", "api", "--port", str(port), *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + wait_s
        while not port_open(port):
            assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
            assert time.monotonic() < deadline, f"meterflow cloud api did not listen in {wait_s} s"
            time.sleep(0.05)
        yield proc, f"http://{HOST}:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def pid_alive(pid: int) -> bool:
    """True if the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def read_pid(path: Path) -> int | None:
    try:
        first = path.read_text().splitlines()[0].strip()
    except (OSError, IndexError):
        return None
    return int(first) if first.isdigit() else None


def make_traversable(path: Path, top: Path) -> None:
    """When root, let other users (mosquitto, postgres) walk down from ``top`` to ``path``.

    pytest's temporary directories are 0700 root; the servers drop to their own users and
    need search (x) permission on every parent. Only ``o+x`` is added, never read; pytest
    resets its ``pytest-of-root`` directory to 0700 on the next run anyway.
    """
    if os.geteuid() != 0:
        return
    path, top = path.resolve(), top.resolve()
    if path != top and top not in path.parents:
        return
    for directory in [path, *path.parents]:
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
        if directory == top:
            break


def run_script(script: str, *args: str | int, timeout: float = SCRIPT_TIMEOUT):
    """Run deploy/local/<script> and return the CompletedProcess (never raises on exit code)."""
    env = dict(os.environ, MF_SERVER_WATCH_PID=str(os.getpid()))
    try:
        return subprocess.run(
            ["bash", str(SCRIPTS / script), *map(str, args)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ServerError(
            f"{script} {' '.join(map(str, args))} timed out after {timeout}s"
        ) from exc


def _check(proc: subprocess.CompletedProcess, what: str) -> None:
    if proc.returncode != 0:
        raise ServerError(
            f"{what} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}".rstrip()
        )


# --------------------------------------------------------------------------- servers


@dataclass(frozen=True)
class ScriptServer:
    """A server run by ``deploy/local/<script>``, identified by its data dir and port."""

    host: str
    port: int
    url: str
    data_dir: Path = field(repr=False)

    script = ""  # overridden
    pid_file = ""  # relative to data_dir

    @property
    def start_args(self) -> tuple[str, ...]:
        """Options after ``start DATADIR PORT`` (none unless a subclass needs some)."""
        return ()

    def start(self) -> None:
        """Start (again) on the same port and data dir; returns once it answers."""
        t0 = time.monotonic()
        proc = run_script(self.script, "start", self.data_dir, self.port, *self.start_args)
        _check(proc, f"{self.script} start")
        _RUNNING[self.data_dir] = self
        STARTUP_TIMES.setdefault(self.script.removesuffix(".sh"), time.monotonic() - t0)

    def stop(self) -> None:
        """Stop it (SIGTERM by PID, SIGKILL after a while); fine if it is not running."""
        _check(run_script(self.script, "stop", self.data_dir), f"{self.script} stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Crash it: send ``sig`` (default SIGKILL, no clean shutdown) and wait until it is
        gone. ``start()`` brings it back on the same port and data dir."""
        pid = self.pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + 15
        while pid_alive(pid):
            if time.monotonic() > deadline:
                raise ServerError(f"{self.script}: pid {pid} still alive after signal {sig}")
            time.sleep(0.02)

    @property
    def pid(self) -> int | None:
        """PID of the running server, or None."""
        pid = read_pid(self.data_dir / self.pid_file)
        return pid if pid is not None and pid_alive(pid) else None

    def is_running(self) -> bool:
        return self.pid is not None

    @property
    def log_path(self) -> Path:
        raise NotImplementedError

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass(frozen=True)
class MosquittoServer(ScriptServer):
    """mosquitto 2.x: ``url`` is ``mqtt://127.0.0.1:PORT``, anonymous, persistence on.

    ``stop()`` then ``start()`` gives "broker down for a while, back on the same port" with
    the persisted sessions kept; ``with broker.stopped(): ...`` does the same around a block.
    Extra broker configuration can be dropped as ``*.conf`` into ``data_dir / "conf.d"``
    before a ``restart()``.
    """

    script = "mosquitto.sh"
    pid_file = "mosquitto.pid"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "mosquitto.log"

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """Stop the broker for the duration of the block, then start it again."""
        self.stop()
        try:
            yield
        finally:
            self.start()


@dataclass(frozen=True)
class InfluxServer(ScriptServer):
    """influxd 1.x: ``url`` is ``http://127.0.0.1:PORT`` (``/ping``, ``/write``, ``/query``)."""

    script = "influxdb.sh"
    pid_file = "influxd.pid"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "influxd.log"


@dataclass(frozen=True)
class PostgresServer(ScriptServer):
    """PostgreSQL: ``url`` is the SQLAlchemy URL of database ``meterflow`` (role ``meterflow``).

    ``dsn`` is the same for psycopg/libpq; ``admin_dsn`` connects as superuser ``postgres``.
    Authentication is ``trust`` (tests only).
    """

    dsn: str = ""
    admin_dsn: str = ""
    user: str = "meterflow"
    database: str = "meterflow"

    script = "postgres.sh"
    pid_file = "pgdata/postmaster.pid"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "postgres.log"

    def url_for(self, database: str) -> str:
        """SQLAlchemy URL of another database on this server, as role ``meterflow``."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def dsn_for(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"


def _mosquitto(data_dir: Path, port: int) -> MosquittoServer:
    return MosquittoServer(HOST, port, f"mqtt://{HOST}:{port}", data_dir)


def _influx(data_dir: Path, port: int) -> InfluxServer:
    return InfluxServer(HOST, port, f"http://{HOST}:{port}", data_dir)


def _postgres(data_dir: Path, port: int) -> PostgresServer:
    return PostgresServer(
        HOST,
        port,
        f"postgresql+psycopg://meterflow@{HOST}:{port}/meterflow",
        data_dir,
        dsn=f"postgresql://meterflow@{HOST}:{port}/meterflow",
        admin_dsn=f"postgresql://postgres@{HOST}:{port}/postgres",
    )


# data_dir -> server started by this process and not yet stopped for good
_RUNNING: dict[Path, ScriptServer] = {}


def _start_on_free_port(make, data_dir: Path):
    """Start on a kernel-chosen free port; retry with another if someone grabs it first."""
    errors = []
    for _ in range(START_ATTEMPTS):
        server = make(data_dir, free_port())
        t0 = time.monotonic()
        proc = run_script(server.script, "start", data_dir, server.port, *server.start_args)
        if proc.returncode == 0:
            STARTUP_TIMES[server.script.removesuffix(".sh")] = time.monotonic() - t0
            _RUNNING[data_dir] = server
            return server
        errors.append(f"port {server.port}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}")
        if proc.returncode != EXIT_PORT_BUSY:
            break
    raise ServerError(f"{make(data_dir, 0).script} start failed:\n" + "\n".join(errors))


def start_mosquitto(data_dir: Path) -> MosquittoServer:
    require(find_mosquitto, "mosquitto", "mosquitto")
    return _start_on_free_port(_mosquitto, data_dir)


def start_influxdb(data_dir: Path) -> InfluxServer:
    require(find_influxd, "influxd", "influxdb")
    return _start_on_free_port(_influx, data_dir)


def start_postgres(data_dir: Path) -> PostgresServer:
    require(find_pg_bindir, "PostgreSQL server (pg_ctl/initdb/postgres)", "postgresql")
    return _start_on_free_port(_postgres, data_dir)


def stop_server(server: ScriptServer) -> None:
    """Stop for good (session end): by script, then by PID if the script failed."""
    _RUNNING.pop(server.data_dir, None)
    try:
        server.stop()
    finally:
        pid = server.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def stop_all() -> None:
    """Stop whatever this process started and did not stop (atexit safety net)."""
    for server in list(_RUNNING.values()):
        with contextlib.suppress(Exception):
            stop_server(server)


# --------------------------------------------------------------------------- per-test databases


def unique_name(prefix: str, hint: str = "") -> str:
    """A lowercase identifier such as ``mf_test_write_1a2b3c4d`` (at most 63 chars)."""
    slug = re.sub(r"[^a-z0-9]+", "_", hint.lower()).strip("_")[:40]
    return "_".join(p for p in (prefix, slug, uuid.uuid4().hex[:8]) if p)


class InfluxDatabase(NamedTuple):
    """What ``fresh_influx_db`` yields; unpacks as ``base_url, db_name``."""

    base_url: str
    db_name: str


def influx_query(base_url: str, q: str, db: str | None = None) -> dict:
    """POST an InfluxQL statement to ``/query``; raise ServerError on any error."""
    import json
    from urllib.parse import urlencode

    import urllib3

    fields = {"q": q}
    if db:
        fields["db"] = db
    resp = urllib3.request(
        "POST",
        f"{base_url}/query",
        body=urlencode(fields),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10.0,
    )
    body = resp.data.decode("utf-8", "replace")
    if resp.status != 200:
        raise ServerError(f"InfluxDB {q!r}: HTTP {resp.status}: {body}")
    data = json.loads(body)
    errors = [r["error"] for r in data.get("results", []) if "error" in r]
    if "error" in data or errors:
        raise ServerError(f"InfluxDB {q!r}: {data.get('error') or errors}")
    return data


def quote_influx_identifier(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


@contextlib.contextmanager
def fresh_influx_database(server: InfluxServer, hint: str = "") -> Iterator[InfluxDatabase]:
    name = unique_name("mf", hint)
    influx_query(server.url, f"CREATE DATABASE {quote_influx_identifier(name)}")
    try:
        yield InfluxDatabase(server.url, name)
    finally:
        if server.is_running():
            influx_query(server.url, f"DROP DATABASE {quote_influx_identifier(name)}")


@contextlib.contextmanager
def fresh_postgres_database(server: PostgresServer, hint: str = "") -> Iterator[str]:
    """A new empty database owned by ``meterflow``; yields its SQLAlchemy URL."""
    import psycopg
    from psycopg import sql

    name = unique_name("mf", hint)
    with psycopg.connect(server.admin_dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(server.user)
            )
        )
    try:
        yield server.url_for(name)
    finally:
        if server.is_running():
            with psycopg.connect(server.admin_dsn, autocommit=True, connect_timeout=10) as conn:
                # FORCE: connections a test (or its pool) left open must not block the drop
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
