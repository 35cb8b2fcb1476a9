"""A mosquitto as deployed for the gateway tests: the shipped ACL, users made by
deploy/mosquitto/broker-users.sh, no anonymous clients (tests/support/secured_broker.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support import servers
from tests.support.secured_broker import (
    BrokerClient,
    SecuredMosquittoServer,
    start_secured_mosquitto,
)

#: broker users made before the start: (site, gateway); the cloud's are mf-ingest and mf-api
GATEWAYS = (("site-a", "gw-a1"), ("site-a", "gw-a2"), ("site-b", "gw-b1"))


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredMosquittoServer]:
    """mosquitto with the shipped ACL and users for GATEWAYS, mf-ingest and mf-api (module)."""
    data_dir = tmp_path_factory.mktemp("secured-mosquitto")
    base = tmp_path_factory.getbasetemp()
    servers.make_traversable(
        data_dir, base.parent if base.parent.name.startswith("pytest-of-") else base
    )
    server = start_secured_mosquitto(
        data_dir, tmp_path_factory.mktemp("broker-auth"), GATEWAYS, ("mf-ingest", "mf-api")
    )
    yield server
    servers.stop_server(server)


@pytest.fixture
def connect(broker: SecuredMosquittoServer) -> Iterator[Callable[..., BrokerClient]]:
    """``connect(user, password=None, **kw)``: a :class:`BrokerClient` closed after the test."""
    opened: list[BrokerClient] = []

    def _connect(user: str | None, password: str | None = None, **kw) -> BrokerClient:  # type: ignore[no-untyped-def]
        secret = password if password is not None or user is None else broker.passwords[user]
        client = BrokerClient(broker, user, secret, **kw)
        opened.append(client)
        return client

    yield _connect
    for client in opened:
        client.close()
