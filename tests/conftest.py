"""Shared fixtures: real mosquitto / InfluxDB / PostgreSQL servers (see tests/support/servers.py).

Each server starts lazily, the first time a test asks for its fixture, and is stopped at the
end of the session. Missing server binaries skip those tests (fail when ``CI=true``);
install them with ``sudo deploy/local/install-servers.sh``.
"""

from __future__ import annotations

import atexit
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.keys import GatewayIdentity
from tests.support import servers
from tests.support.servers import (
    InfluxDatabase,
    InfluxServer,
    MosquittoServer,
    PostgresServer,
)

atexit.register(servers.stop_all)

# Tests using these fixtures get the matching marker (declared in pyproject.toml), so that
# e.g. ``pytest -m "not postgres"`` deselects them.
_MARKERS = {
    "mosquitto_server": "mosquitto",
    "influxdb_server": "influxdb",
    "postgres_server": "postgres",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, marker in _MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)


# the servers behind the session fixtures (the restart guard below looks after them only)
_SESSION_SERVERS: list[servers.ScriptServer] = []


def _server_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    data_dir = tmp_path_factory.mktemp(name)
    base = tmp_path_factory.getbasetemp()
    # default basetemp is /tmp/pytest-of-USER/pytest-N (under xdist …/pytest-N/popen-gwK):
    # open the 0700 pytest-of-USER and what lies between too
    top = next((p for p in base.parents if p.name.startswith("pytest-of-")), base)
    servers.make_traversable(data_dir, top)
    return data_dir


@pytest.fixture(scope="session")
def mosquitto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    """A mosquitto broker on 127.0.0.1 for the session; ``.stop()``/``.start()`` to fault it."""
    server = servers.start_mosquitto(_server_dir(tmp_path_factory, "mosquitto"))
    _SESSION_SERVERS.append(server)
    yield server
    _SESSION_SERVERS.remove(server)
    servers.stop_server(server)


@pytest.fixture(scope="session")
def influxdb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    """An influxd 1.x on 127.0.0.1 for the session."""
    server = servers.start_influxdb(_server_dir(tmp_path_factory, "influxdb"))
    _SESSION_SERVERS.append(server)
    yield server
    _SESSION_SERVERS.remove(server)
    servers.stop_server(server)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A PostgreSQL on 127.0.0.1 for the session, with role and database ``meterflow``."""
    server = servers.start_postgres(_server_dir(tmp_path_factory, "postgres"))
    _SESSION_SERVERS.append(server)
    yield server
    _SESSION_SERVERS.remove(server)
    servers.stop_server(server)


@pytest.fixture()
def fresh_postgres_url(
    postgres_server: PostgresServer, request: pytest.FixtureRequest
) -> Iterator[str]:
    """SQLAlchemy URL (``postgresql+psycopg://meterflow@127.0.0.1:PORT/mf_...``) of a new,
    empty database owned by ``meterflow``; dropped (WITH FORCE) after the test."""
    with servers.fresh_postgres_database(postgres_server, request.node.name) as url:
        yield url


@pytest.fixture()
def fresh_influx_db(
    influxdb_server: InfluxServer, request: pytest.FixtureRequest
) -> Iterator[InfluxDatabase]:
    """``(base_url, db_name)`` of a newly created InfluxDB database, dropped after the test."""
    with servers.fresh_influx_database(influxdb_server, request.node.name) as db:
        yield db


@pytest.fixture(autouse=True)
def _restart_stopped_servers() -> Iterator[None]:
    """A test that stops a session server (e.g. the broker) and does not start it again
    must not break the tests after it: start it again on the same port."""
    yield
    for server in _SESSION_SERVERS:
        if not server.is_running():
            server.start()


def pytest_terminal_summary(terminalreporter) -> None:
    if servers.STARTUP_TIMES:
        parts = ", ".join(f"{name} {secs:.2f}s" for name, secs in servers.STARTUP_TIMES.items())
        terminalreporter.write_line(f"real servers started: {parts}")


@pytest.fixture()
def identity() -> GatewayIdentity:
    """A gateway's signing identity, new for each test (kept in memory, no key file)."""
    return GatewayIdentity(Ed25519PrivateKey.generate())
