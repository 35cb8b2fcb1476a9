"""What the engineer pages show beside a claim token: the exact commands that provision the
gateway with it, and the age of a gateway's last report in words. Pure functions, no I/O."""

from __future__ import annotations

import ipaddress
import shlex
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from cloud.gateways.provisioning import BrokerGrant

#: The data directory the steps name on the gateway (keys, site file, broker settings).
GATEWAY_DATA_DIR = "/var/lib/meterflow"


@dataclass(frozen=True)
class Step:
    """One provisioning step: the i18n key of what it does and the command (may be empty)."""

    text: str
    command: str


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def provisioning_steps(cloud_url: str, data_dir: str = GATEWAY_DATA_DIR) -> list[Step]:
    """The commands an engineer runs on the gateway, in order, with ``cloud_url`` (the base
    URL the gateway reaches the cloud on) filled in. The claim token is pasted at the prompt of
    ``edge provision`` (never an argument: ``ps`` shows arguments to every user)."""
    base = cloud_url.rstrip("/")
    host = urlsplit(base).hostname or ""
    plain = " --allow-http" if base.startswith("http://") and not _loopback(host) else ""
    return [
        Step("step_data_dir", f"export MF_DATA_DIR={shlex.quote(data_dir)}"),
        Step("step_provision", f"meterflow edge provision {shlex.quote(base)}{plain}"),
        Step("step_check", "meterflow edge check"),
        Step("step_run", "meterflow edge run"),
        Step("step_online", ""),
    ]


def claim_broker(base: BrokerGrant, username: str, password: str, gateway: str) -> BrokerGrant:
    """What a claim made on the engineer pages hands out: the broker URL without any user of
    its own (the API's ``MF_MQTT_URL`` may carry the cloud's broker user, which a gateway must
    never get) and the gateway's broker user and password when given (user: the gateway id
    unless named, as ``deploy/mosquitto/broker-users.sh`` makes them)."""
    parts = urlsplit(base.mqtt_url)
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    url = urlunsplit(parts._replace(netloc=netloc)) if parts.hostname else base.mqtt_url
    user = username.strip() or (gateway if password else "")
    return BrokerGrant(url, user or None, password or None, base.topic_prefix)


#: (upper bound in seconds, divisor, i18n key) of :func:`ago`
_AGO = ((120, 1, "ago_s"), (2 * 3600, 60, "ago_min"), (48 * 3600, 3600, "ago_h"))


def ago(seconds: float | None, t: dict[str, str]) -> str:
    """A past instant's age in words in ``t``'s language: ``3 分钟前`` / ``3 min ago``."""
    if seconds is None:
        return "—"
    for bound, unit, key in _AGO:
        if seconds < bound:
            return t[key].format(n=int(seconds // unit))
    return t["ago_d"].format(n=int(seconds // 86400))
