"""Lease fixtures, found by pytest in every test module of tests/leases/.

Registries (helpers in tests/support/leases_portfolio.py):

``lease_db`` (test, params sqlite/postgres) -> sessionmaker on a registry at head
``lease_pg`` (test) -> the same on PostgreSQL only

Migrations run once per session: on PostgreSQL one database serves every test and is
emptied (TRUNCATE) before each; on SQLite each test gets a copy of a migrated file.

Notification receivers on 127.0.0.1 (classes in tests/support/smtp_http_receivers.py),
stopped at the end of each test: ``smtp_receiver``, ``tls_smtp_receiver``, ``http_receiver``.
"""

from __future__ import annotations

import shutil
import ssl
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from cloud.registry.db import open_registry
from tests.support import servers
from tests.support.servers import HOST, PostgresServer, free_port
from tests.support.smtp_http_receivers import (
    SMTP_PASSWORD,
    SMTP_USER,
    HttpReceiver,
    SmtpReceiver,
    handler_for,
    self_signed,
    start_smtp,
)

# ------------------------------------------------------------------ databases


@pytest.fixture(scope="session", name="lease_pg_database")
def lease_pg_database_fixture(postgres_server: PostgresServer) -> Iterator[sessionmaker[Session]]:
    """One PostgreSQL registry migrated to head for the session; tests empty it first."""
    import psycopg
    from psycopg import sql

    name = servers.unique_name("mf_leases")
    with psycopg.connect(postgres_server.admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(postgres_server.user)
            )
        )
    sessions = open_registry(postgres_server.url_for(name))
    yield sessions
    sessions.kw["bind"].dispose()
    if postgres_server.is_running():
        with psycopg.connect(postgres_server.admin_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(name="lease_pg")
def lease_pg_fixture(lease_pg_database: sessionmaker[Session]) -> sessionmaker[Session]:
    """The session's PostgreSQL registry, emptied (every table but Alembic's truncated)."""
    with lease_pg_database.begin() as session:
        tables = session.scalars(
            text(
                "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version'"
            )
        ).all()
        session.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    return lease_pg_database


@pytest.fixture(scope="session", name="lease_sqlite_template")
def lease_sqlite_template_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite registry migrated to head once, copied for every test."""
    path = tmp_path_factory.mktemp("lease-template") / "registry.sqlite"
    open_registry(f"sqlite:///{path}").kw["bind"].dispose()
    return path


@pytest.fixture(params=["sqlite", "postgres"], name="lease_db")
def lease_db_fixture(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[sessionmaker[Session]]:
    """A fresh registry at head on SQLite and on PostgreSQL."""
    if request.param == "postgres":
        yield request.getfixturevalue("lease_pg")
        return
    path = tmp_path / "registry.sqlite"
    shutil.copyfile(request.getfixturevalue("lease_sqlite_template"), path)
    sessions = open_registry(f"sqlite:///{path}")
    yield sessions
    sessions.kw["bind"].dispose()


# ------------------------------------------------------------------ notification receivers


@pytest.fixture(name="smtp_receiver")
def smtp_receiver_fixture() -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver(HOST, free_port())
    controller = start_smtp(receiver)
    yield receiver
    controller.stop()


@pytest.fixture(name="tls_smtp_receiver")
def tls_smtp_receiver_fixture(tmp_path: Path) -> Iterator[SmtpReceiver]:
    cert_file, key_file = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    receiver = SmtpReceiver(HOST, free_port(), ca_file=cert_file)

    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == SMTP_USER.encode()
            and auth_data.password == SMTP_PASSWORD.encode()
        )
        if ok:
            receiver.logins.append(SMTP_USER)
        return AuthResult(success=ok)

    controller = start_smtp(
        receiver,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
        server_hostname=HOST,
    )
    yield receiver
    controller.stop()


@pytest.fixture(name="http_receiver")
def http_receiver_fixture() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver("")
    server = ThreadingHTTPServer((HOST, 0), handler_for(receiver))
    receiver.url = f"http://{HOST}:{server.server_address[1]}/hook"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
