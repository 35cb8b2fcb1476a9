"""mosquitto as deployed: the shipped ACL (``deploy/mosquitto/meterflow.acl``) and a password
file made by ``deploy/mosquitto/broker-users.sh``, on 127.0.0.1 without TLS
(``deploy/local/mosquitto.sh start DATADIR PORT --passwd FILE --acl FILE``)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from tests.support.servers import (
    HOST,
    REPO_ROOT,
    MosquittoServer,
    _check,
    _start_on_free_port,
    find_mosquitto,
    require,
    run_script,
)

#: the shipped broker ACL and the tool that adds users to it and to the password file
SHIPPED_ACL = REPO_ROOT / "deploy" / "mosquitto" / "meterflow.acl"
BROKER_USERS = REPO_ROOT / "deploy" / "mosquitto" / "broker-users.sh"


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

    def reload(self) -> None:
        """Make the running broker re-read the password and ACL files (SIGHUP)."""
        _check(run_script(self.script, "reload", self.data_dir), f"{self.script} reload")


def start_secured_mosquitto(data_dir: Path, auth_dir: Path) -> SecuredMosquittoServer:
    """mosquitto with a copy of the shipped ACL (``auth_dir/meterflow.acl``) and an empty
    password file (``auth_dir/meterflow.passwd``): nobody can connect until users are added
    (``add_gateway``/``add_cloud``, then ``reload``)."""
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

    return _start_on_free_port(make, data_dir)
