"""mosquitto as deployed: the shipped ACL (``deploy/mosquitto/meterflow.acl``) and a password
file made by ``deploy/mosquitto/broker-users.sh``, on 127.0.0.1 without TLS
(``deploy/local/mosquitto.sh start DATADIR PORT --passwd FILE --acl FILE``)."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from tests.support.servers import (
    HOST,
    REPO_ROOT,
    MosquittoServer,
    ServerError,
    _check,
    _start_on_free_port,
    find_mosquitto,
    require,
    run_script,
)

#: the shipped broker ACL and the tool that adds users to it and to the password file
SHIPPED_ACL = REPO_ROOT / "deploy" / "mosquitto" / "meterflow.acl"
BROKER_USERS = REPO_ROOT / "deploy" / "mosquitto" / "broker-users.sh"
_ids = itertools.count()


@dataclass(frozen=True)
class SecuredMosquittoServer(MosquittoServer):
    """mosquitto 2.x as deployed (``deploy/mosquitto/meterflow.acl``, users in a password file
    made by ``deploy/mosquitto/broker-users.sh``) but on 127.0.0.1 without TLS: anonymous
    clients are refused. ``url`` carries no user; :meth:`url_as` gives one that does.
    :meth:`add_gateway` / :meth:`add_cloud` make users, :meth:`reload` applies them."""

    password_file: Path | None = None
    acl_file: Path | None = None
    passwords: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def start_args(self) -> tuple[str, ...]:
        return ("--passwd", str(self.password_file), "--acl", str(self.acl_file))

    def url_as(self, user: str, password: str | None = None) -> str:
        """``mqtt://user:password@127.0.0.1:PORT`` (the password made for ``user`` by default)."""
        secret = self.passwords[user] if password is None else password
        return f"mqtt://{quote(user, safe='')}:{quote(secret, safe='')}@{self.host}:{self.port}"

    def users(self, *args: str) -> str:
        """Run ``deploy/mosquitto/broker-users.sh`` on this broker's files; its stdout."""
        files = ("--passwd", str(self.password_file), "--acl", str(self.acl_file))
        proc = subprocess.run(
            ["bash", str(BROKER_USERS), *files, *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        _check(proc, f"broker-users.sh {' '.join(args)}")
        return proc.stdout.strip()

    def add_gateway(self, site: str, gateway: str) -> str:
        """Make broker user ``gateway`` for ``site``; its password (also kept in ``passwords``)."""
        self.passwords[gateway] = self.users("gateway", site, gateway)
        return self.passwords[gateway]

    def add_cloud(self, user: str) -> str:
        """Make cloud identity ``user`` (``mf-ingest``, ``mf-api``); its password."""
        self.passwords[user] = self.users("cloud", user)
        return self.passwords[user]

    def reload(self, timeout_s: float = 10.0) -> None:
        """Make the running broker re-read the password and ACL files (SIGHUP); returns once
        its log says it did."""
        before = self._reloads()
        _check(run_script(self.script, "reload", self.data_dir), f"{self.script} reload")
        deadline = time.monotonic() + timeout_s
        while self._reloads() <= before:
            if time.monotonic() > deadline:
                raise ServerError(f"mosquitto did not reload within {timeout_s} s")
            time.sleep(0.02)

    def _reloads(self) -> int:
        try:
            return self.log_path.read_text(errors="replace").count("Reloading config.")
        except OSError:
            return 0


def start_secured_mosquitto(
    data_dir: Path,
    auth_dir: Path,
    gateways: Iterable[tuple[str, str]] = (),
    cloud: Iterable[str] = (),
) -> SecuredMosquittoServer:
    """mosquitto with a copy of the shipped ACL (``auth_dir/meterflow.acl``) and a password
    file (``auth_dir/meterflow.passwd``) holding broker users for ``gateways`` ((site,
    gateway) pairs) and the ``cloud`` identities (``mf-ingest``, ``mf-api``); more can be
    added later (``add_gateway``/``add_cloud``, then ``reload``)."""
    require(find_mosquitto, "mosquitto", "mosquitto")
    auth_dir.mkdir(parents=True, exist_ok=True)
    acl, passwd = auth_dir / "meterflow.acl", auth_dir / "meterflow.passwd"
    shutil.copyfile(SHIPPED_ACL, acl)
    passwd.touch(mode=0o600)
    passwords: dict[str, str] = {}

    def make(directory: Path, port: int) -> SecuredMosquittoServer:
        return SecuredMosquittoServer(
            HOST, port, f"mqtt://{HOST}:{port}", directory, passwd, acl, passwords
        )

    unstarted = make(data_dir, 0)
    for site, gateway in gateways:
        unstarted.add_gateway(site, gateway)
    for user in cloud:
        unstarted.add_cloud(user)
    return _start_on_free_port(make, data_dir)


class BrokerClient:
    """A plain MQTT 3.1.1 client for ACL tests: connects as a user (or anonymously), records
    the CONNACK, every message it receives, and can leave without DISCONNECT (so the broker
    publishes its will)."""

    def __init__(
        self,
        server: MosquittoServer,
        user: str | None,
        password: str | None = None,
        *,
        client_id: str | None = None,
        will: tuple[str, bytes] | None = None,
    ) -> None:
        import paho.mqtt.client as mqtt

        self.user = user
        self.received: list[tuple[str, bytes]] = []
        self._changed = threading.Condition()
        self._connack = threading.Event()
        self._subacks: dict[int, list[str]] = {}
        self.reason: str | None = None
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"acl-test-{user or 'anonymous'}-{next(_ids)}",
            clean_session=True,
        )
        if user is not None:
            self.client.username_pw_set(user, password)
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.connect(server.host, server.port, keepalive=30)
        self.client.loop_start()
        if not self._connack.wait(10):
            raise AssertionError(f"no CONNACK for {user!r} within 10 s")

    @property
    def accepted(self) -> bool:
        return self.reason == "Success"

    def _on_connect(self, _client, _userdata, _flags, reason_code, _props) -> None:  # type: ignore[no-untyped-def]
        self.reason = str(reason_code)
        self._connack.set()

    def _on_subscribe(self, _client, _userdata, mid, codes, _props) -> None:  # type: ignore[no-untyped-def]
        with self._changed:
            self._subacks[mid] = [str(c) for c in codes]
            self._changed.notify_all()

    def _on_message(self, _client, _userdata, msg) -> None:  # type: ignore[no-untyped-def]
        with self._changed:
            self.received.append((msg.topic, bytes(msg.payload)))
            self._changed.notify_all()

    def subscribe(self, *filters: str) -> None:
        """Subscribe at QoS 1 and wait for the SUBACK."""
        _, mid = self.client.subscribe([(f, 1) for f in filters])
        with self._changed:
            if not self._changed.wait_for(lambda: mid in self._subacks, 10):
                raise AssertionError(f"no SUBACK for {filters} within 10 s")

    def publish(self, topic: str, body: bytes, retain: bool = False) -> None:
        """Publish at QoS 1 and wait for the PUBACK (a broker denying it by ACL still acks)."""
        info = self.client.publish(topic, body, qos=1, retain=retain)
        info.wait_for_publish(10)
        assert info.is_published(), f"no PUBACK for {topic} within 10 s"

    def wait_for(self, topic: str, body: bytes, timeout_s: float = 10.0) -> None:
        """Wait until ``(topic, body)`` has arrived; AssertionError naming what came instead."""
        with self._changed:
            if not self._changed.wait_for(lambda: (topic, body) in self.received, timeout_s):
                raise AssertionError(
                    f"{self.user}: {topic} {body!r} not received in {timeout_s} s; "
                    f"got {self.received}"
                )

    def vanish(self) -> None:
        """Drop the connection without DISCONNECT, as a crashed gateway would."""
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()

    def close(self) -> None:
        if self.client.is_connected():
            self.client.disconnect()
        self.client.loop_stop()
