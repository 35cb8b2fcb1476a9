"""Provisioning a gateway in the field: make its key, redeem a claim token, store what comes.

The key pair is made here, on the gateway; only the public key and its key id travel to the
cloud (``POST /api/v1/provision``). In return the gateway stores, in its data directory:

``gateway.key``   its private key (mode 0600, never sent)
``site.toml``     its site configuration, verbatim
``broker.json``   broker URL, credentials and topic prefix (mode 0600), and the name of the
                  broker's CA file when one was given (``--broker-ca``: ``broker-ca.pem``)
``cloud.pub``     the cloud's public key (PEM), which signs commands

``meterflow edge run`` (and ``edge check``) with no arguments use exactly these: the site file,
the key, the broker's URL, user, password, topic prefix and CA (decision 0025).

(``cloud-keys.json``, the keys trusted after a rotation of the cloud's key, is written by
:mod:`edge.commands`; a new provisioning moves it aside with the rest.)

The claim token is a secret: the CLI reads it from stdin or ``MF_CLAIM_TOKEN``, never from
its arguments (which every user of the machine sees in ``ps``). When the gateway replaces
hardware of a provisioned gateway and no admin approved that in advance, the reply says
``awaiting_approval``: the cloud refuses this gateway's envelopes until an admin approves.

Everything is prepared in a staging directory and moved into place only once the cloud has
answered and the answer checks out, so a failed attempt leaves the gateway as it was. Only
the standard library speaks HTTP here: a gateway installs ``meterflow[edge]`` alone.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import tempfile
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from edge.config import SiteConfig
from edge.keys import GatewayIdentity, key_id, load_public_key_b64, public_key_b64
from edge.wire import DEFAULT_TOPIC_PREFIX, ProvisionReply
from edge.wire.files import write_private_file

GATEWAY_KEY = "gateway.key"
SITE_CONFIG = "site.toml"
BROKER_FILE = "broker.json"
CLOUD_KEY = "cloud.pub"
BROKER_CA = "broker-ca.pem"
_FILES = (GATEWAY_KEY, SITE_CONFIG, BROKER_FILE, CLOUD_KEY)
#: Files of an earlier provisioning that are moved aside but not written anew.
_STALE = ("cloud-keys.json", BROKER_CA)
_BROKER_KEYS = ("mqtt_url", "mqtt_username", "mqtt_password")
_MAX_REPLY_BYTES = 1024 * 1024
PROVISION_PATH = "/api/v1/provision"


class ProvisionError(Exception):
    """Provisioning failed; the message says at which step and what came back."""


@dataclass(frozen=True)
class ProvisionResult:
    """What provisioning did. ``config_problem`` is set when the stored site configuration
    does not load on this gateway (the key is registered all the same)."""

    site: str
    gateway: str
    kid: str
    cloud_kid: str
    data_dir: Path
    replaced_dir: Path | None
    config_problem: str | None
    awaiting_approval: bool = False


def _check_transport(cloud_url: str, allow_http: bool) -> str:
    parts = urlsplit(cloud_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProvisionError(f"cloud URL {cloud_url!r}: expected https://host[:port]")
    if parts.scheme == "http" and not allow_http:
        host = parts.hostname
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ProvisionError(
                f"cloud URL {cloud_url!r} is plain http: the claim token and broker password "
                f"would travel unencrypted; use https, or --allow-http on a trusted network"
            )
    return cloud_url.rstrip("/") + PROVISION_PATH


def _post_claim(url: str, body: dict[str, str], timeout_s: float) -> ProvisionReply:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            raw = response.read(_MAX_REPLY_BYTES + 1)
    except urllib.error.HTTPError as exc:
        text = exc.read(4096).decode("utf-8", "replace")
        try:
            detail = json.loads(text)["detail"]
        except (ValueError, KeyError, TypeError):
            detail = text.strip() or exc.reason
        raise ProvisionError(f"the cloud refused the claim: HTTP {exc.code}: {detail}") from None
    except urllib.error.URLError as exc:
        raise ProvisionError(f"cannot reach the cloud at {url}: {exc.reason}") from None
    except OSError as exc:  # timeouts and resets after the connection was made
        raise ProvisionError(f"no answer from the cloud at {url}: {exc}") from None
    if len(raw) > _MAX_REPLY_BYTES:
        raise ProvisionError(f"the cloud's answer exceeds {_MAX_REPLY_BYTES} bytes")
    try:
        return ProvisionReply.model_validate_json(raw)
    except ValidationError as exc:
        raise ProvisionError(f"the cloud's answer is not a provisioning reply: {exc}") from None


def _config_problem(site_config: str, site: str, gateway: str) -> str | None:
    try:
        config = SiteConfig.model_validate(tomllib.loads(site_config))
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        return f"{SITE_CONFIG} does not load: {exc}"
    except RecursionError:
        return f"{SITE_CONFIG} does not load: nested too deeply"
    if (config.site, config.gateway) != (site, gateway):
        return (
            f"{SITE_CONFIG} is for gateway {config.gateway!r} at site {config.site!r}, "
            f"but this gateway was registered as {gateway!r} at {site!r}"
        )
    return None


def provision(
    cloud_url: str,
    claim_token: str,
    data_dir: Path,
    *,
    force: bool = False,
    allow_http: bool = False,
    timeout_s: float = 30.0,
    broker_ca: Path | None = None,
) -> ProvisionResult:
    """Provision this gateway: new key pair, claim redeemed at ``cloud_url``, files stored.

    Refuses when ``data_dir`` holds a provisioned gateway already, unless ``force``: then the
    old files are moved to ``data_dir/replaced-<UTC time>/`` once the new ones are ready.
    ``broker_ca`` (PEM) is copied beside them for a broker whose certificate a private CA
    signed.
    Raises ProvisionError naming the failed step (network, HTTP status and the cloud's
    detail, an answer that does not match the request).
    """
    url = _check_transport(cloud_url, allow_http)
    ca_pem = _read_ca(broker_ca) if broker_ca is not None else None
    existing = [name for name in _FILES if (data_dir / name).exists()]
    if existing and not force:
        raise ProvisionError(
            f"{data_dir} holds a provisioned gateway already "
            f"({', '.join(existing)}); use --force to replace it"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".provision-", dir=data_dir))
    try:
        identity = GatewayIdentity.create(staging / GATEWAY_KEY)
        reply = _post_claim(
            url,
            {
                "claim_token": claim_token,
                "public_key": public_key_b64(identity.public_key),
                "key_id": identity.kid,
            },
            timeout_s,
        )
        if reply.kid != identity.kid:
            raise ProvisionError(
                f"the cloud registered key {reply.kid!r}, not this gateway's {identity.kid!r}"
            )
        try:
            cloud_key = load_public_key_b64(reply.cloud_public_key)
        except ValueError as exc:
            raise ProvisionError(f"the cloud's public key: {exc}") from None
        if key_id(cloud_key) != reply.cloud_kid:
            raise ProvisionError(
                f"the cloud's key id {reply.cloud_kid!r} is not the "
                f"thumbprint of its public key, {key_id(cloud_key)!r}"
            )
        (staging / SITE_CONFIG).write_text(reply.site_config, encoding="utf-8")
        if not write_private_file(
            staging / BROKER_FILE,
            json.dumps(
                {
                    "mqtt_url": reply.mqtt_url,
                    "mqtt_username": reply.mqtt_username,
                    "mqtt_password": reply.mqtt_password,
                    "topic_prefix": reply.topic_prefix,
                    **({"ca_file": BROKER_CA} if ca_pem is not None else {}),
                },
                indent=2,
            ).encode(),
        ):
            raise ProvisionError(f"{staging / BROKER_FILE}: exists already in a new staging folder")
        (staging / CLOUD_KEY).write_bytes(
            cloud_key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        if ca_pem is not None:
            (staging / BROKER_CA).write_bytes(ca_pem)
        replaced = _move_aside(data_dir, existing + [n for n in _STALE if (data_dir / n).exists()])
        for name in _FILES + ((BROKER_CA,) if ca_pem is not None else ()):
            os.replace(staging / name, data_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ProvisionResult(
        site=reply.site,
        gateway=reply.gateway,
        kid=identity.kid,
        cloud_kid=reply.cloud_kid,
        data_dir=data_dir,
        replaced_dir=replaced,
        config_problem=_config_problem(reply.site_config, reply.site, reply.gateway),
        awaiting_approval=reply.awaiting_approval,
    )


def _read_ca(path: Path) -> bytes:
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise ProvisionError(f"{path}: cannot read the broker's CA: {exc.strerror}") from None
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise ProvisionError(f"{path}: expected the broker's CA certificate(s) in PEM")
    return pem


def _move_aside(data_dir: Path, names: list[str]) -> Path | None:
    if not names:
        return None
    aside = data_dir / f"replaced-{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}"
    aside.mkdir(mode=0o700)
    for name in names:
        os.replace(data_dir / name, aside / name)
    return aside


def load_cloud_key(data_dir: Path) -> Ed25519PublicKey:
    """The cloud's public key stored by :func:`provision` (``cloud.pub``): it signs commands."""
    path = data_dir / CLOUD_KEY
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise ProvisionError(f"{path}: cannot read the cloud key: {exc.strerror}") from None
    except ValueError as exc:
        raise ProvisionError(f"{path}: not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ProvisionError(f"{path}: expected an Ed25519 key, got {type(key).__name__}")
    return key


@dataclass(frozen=True)
class StoredBroker:
    """The broker settings ``broker.json`` holds: URL (no user in it), the gateway's broker
    user and password, topic prefix, and the CA file (absolute) when one was stored."""

    mqtt_url: str
    username: str | None
    password: str | None
    topic_prefix: str
    ca_file: Path | None = None

    def url(self, username: str | None = None, password: str | None = None) -> str:
        """The URL with ``username``/``password`` (default: the stored ones) folded in."""
        user = self.username if username is None else username
        secret = self.password if password is None else password
        if not user:
            return self.mqtt_url
        parts = urlsplit(self.mqtt_url)
        auth = quote(user, safe="") + (":" + quote(secret, safe="") if secret else "")
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        return urlunsplit(parts._replace(netloc=f"{auth}@{host}:{port}"))


def load_broker(data_dir: Path) -> StoredBroker | None:
    """The ``broker.json`` that :func:`provision` stored in ``data_dir``; None when there is
    none. ProvisionError when it is unreadable or malformed."""
    path = data_dir / BROKER_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ProvisionError(f"{path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise ProvisionError(f"{path}: not JSON: {exc}") from None
    url, user, secret = (data.get(k) if isinstance(data, dict) else None for k in _BROKER_KEYS)
    if not isinstance(url, str) or not all(v is None or isinstance(v, str) for v in (user, secret)):
        raise ProvisionError(f"{path}: expected mqtt_url and optional mqtt_username/mqtt_password")
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ProvisionError(f"{path}: mqtt_url {url!r}: expected mqtt://host[:port] or mqtts://")
    prefix, ca = data.get("topic_prefix") or DEFAULT_TOPIC_PREFIX, data.get("ca_file")
    if not isinstance(prefix, str) or not (ca is None or isinstance(ca, str)):
        raise ProvisionError(f"{path}: topic_prefix and ca_file must be text")
    ca_file = None if ca is None else data_dir / ca
    if ca_file is not None and not ca_file.is_file():
        raise ProvisionError(f"{path}: names the broker's CA {ca!r}, but {ca_file} is missing")
    return StoredBroker(url, user or None, secret or None, prefix, ca_file)


def load_broker_url(data_dir: Path) -> str | None:
    """The broker URL, with the gateway's own user and password folded in, from the
    ``broker.json`` that :func:`provision` stored; None when there is none. ProvisionError
    when it is unreadable or malformed."""
    stored = load_broker(data_dir)
    return None if stored is None else stored.url()
