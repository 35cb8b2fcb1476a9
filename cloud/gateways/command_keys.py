"""The cloud's command-signing keys and their rotation with an overlap (decision 0018).

Until the first rotation the cloud's own key (``cloud.key``, which also signs statements)
signs commands, and every gateway trusts it: it received it at provisioning as ``cloud.pub``.
``meterflow cloud rotate-command-key`` makes a new key (``command-<kid>.key`` next to
``cloud.key``, mode 0600) and sends every gateway a ``trust_cloud_key`` command signed with
the key the gateway trusts now, carrying the new public key and the instant the old key
retires. A gateway trusts both keys until then. The cloud signs each gateway's commands with
the newest live key that gateway has confirmed (its signed answer to ``trust_cloud_key``, or
the key it was provisioned with), so a gateway that was offline keeps receiving commands
during the overlap and can be sent the new key again (``meterflow cloud command-keys
--resend``). Past ``retires_at`` no side uses the old key; its private file is deleted by
``meterflow cloud command-keys`` (``cloud.key`` itself is kept: it still signs statements).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from cloud.gateways.models import CommandKey, GatewayCommandTrust
from cloud.gateways.provisioning import CloudKeyError, CloudSigner
from cloud.registry.base import as_utc
from edge.wire import Clock, utc_now
from edge.wire.files import private_key_pem, write_private_file

#: The longest overlap a rotation may ask for.
MAX_OVERLAP = timedelta(days=90)
BASE_KEY_FILE = "cloud.key"


class CommandKeyError(Exception):
    """A rotation that cannot be done, or a gateway that trusts no live command key."""


@dataclass(frozen=True)
class Rotation:
    """A rotation begun: the key that retires at ``retires_at`` and the key that follows it."""

    old_kid: str
    new: CloudSigner
    retires_at: datetime


@dataclass(frozen=True)
class KeyState:
    """A command key as ``meterflow cloud command-keys`` lists it."""

    kid: str
    created_at: datetime
    retires_at: datetime | None
    live: bool
    gateways: int


class CommandKeyRing:
    """The command keys: which one signs for which gateway, rotation, retirement.

    ``key_dir`` holds the private key files (the cloud's data directory); without it (tests,
    a cloud that never rotated) only ``base`` exists and rotation is refused.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        base: CloudSigner,
        key_dir: Path | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.sessions = sessions
        self.base = base
        self.key_dir = key_dir
        self.clock = clock
        self._signers: dict[str, CloudSigner] = {base.kid: base}

    # ------------------------------------------------------------------ reading

    def _rows(self, session: Session) -> list[CommandKey]:
        return list(session.scalars(select(CommandKey).order_by(CommandKey.created_at)))

    def _live(self, rows: list[CommandKey], now: datetime) -> list[CommandKey]:
        return [r for r in rows if r.retires_at is None or as_utc(r.retires_at) > now]

    def _signer(self, row: CommandKey) -> CloudSigner:
        found = self._signers.get(row.kid)
        if found is None:
            if self.key_dir is None:
                raise CommandKeyError(f"command key {row.kid}: no key directory to load it from")
            try:
                found = CloudSigner.load(self.key_dir / row.key_file)
            except CloudKeyError as exc:
                raise CommandKeyError(str(exc)) from None
            if found.kid != row.kid:
                raise CommandKeyError(
                    f"{self.key_dir / row.key_file}: holds key {found.kid}, expected {row.kid}"
                )
            self._signers[row.kid] = found
        return found

    def current(self, session: Session) -> CloudSigner:
        """The key new gateways are given: the newest live one (the base key before any
        rotation)."""
        live = self._live(self._rows(session), self.clock())
        return self._signer(live[-1]) if live else self.base

    def signer_for(self, session: Session, gateway_id: str) -> CloudSigner:
        """The newest live key ``gateway_id`` trusts; CommandKeyError when it trusts none
        (it missed a rotation whose overlap has ended: re-provision it)."""
        rows = self._rows(session)
        live = self._live(rows, self.clock()) if rows else None
        trusted = set(
            session.scalars(
                select(GatewayCommandTrust.kid).where(GatewayCommandTrust.gateway_id == gateway_id)
            )
        ) or {self.base.kid}  # provisioned before revision 0012: it holds cloud.pub
        if live is None:
            if self.base.kid in trusted:
                return self.base
        else:
            for row in reversed(live):
                if row.kid in trusted:
                    return self._signer(row)
        raise CommandKeyError(
            f"gateway {gateway_id!r} trusts none of the live command keys (it has "
            f"{sorted(trusted)}); send it the new key or re-provision it"
        )

    def confirm(self, session: Session, gateway_id: str, kid: str, *, only: bool = False) -> None:
        """Record that ``gateway_id`` trusts ``kid``; ``only``: and no other key (new hardware)."""
        if only:
            session.execute(
                delete(GatewayCommandTrust).where(GatewayCommandTrust.gateway_id == gateway_id)
            )
        elif session.get(GatewayCommandTrust, (gateway_id, kid)) is not None:
            return
        session.add(GatewayCommandTrust(gateway_id=gateway_id, kid=kid, confirmed_at=self.clock()))

    def states(self) -> list[KeyState]:
        """Every command key, oldest first, with how many gateways trust it."""
        now = self.clock()
        with self.sessions() as session:
            rows = self._rows(session)
            counts: dict[str, int] = {}
            for kid in session.scalars(select(GatewayCommandTrust.kid)):
                counts[kid] = counts.get(kid, 0) + 1
            live = {r.kid for r in self._live(rows, now)}
            return [
                KeyState(
                    r.kid,
                    as_utc(r.created_at),
                    as_utc(r.retires_at),
                    r.kid in live,
                    counts.get(r.kid, 0),
                )
                for r in rows
            ]

    # ------------------------------------------------------------------ changing

    def rotate(self, overlap: timedelta) -> Rotation:
        """Make a new command key; the current one retires after ``overlap``."""
        if self.key_dir is None:
            raise CommandKeyError("this cloud has no key directory: command keys cannot rotate")
        if not timedelta(0) < overlap <= MAX_OVERLAP:
            raise CommandKeyError(
                f"overlap {overlap}: expected more than 0 and at most {MAX_OVERLAP.days} days"
            )
        now = self.clock()
        key = Ed25519PrivateKey.generate()
        new = CloudSigner(key)
        with self.sessions.begin() as session:
            rows = self._rows(session)
            pending = [r for r in rows if r.retires_at is not None and as_utc(r.retires_at) > now]
            if pending:
                raise CommandKeyError(
                    f"a rotation is under way: key {pending[0].kid} retires at "
                    f"{as_utc(pending[0].retires_at).isoformat()}; rotate again after that"
                )
            live = self._live(rows, now)
            if not live:
                base = CommandKey(
                    kid=self.base.kid,
                    public_key=self.base.public_key_b64,
                    key_file=BASE_KEY_FILE,
                    created_at=now - timedelta(microseconds=1),
                )
                session.add(base)
                live = [base]
            old = live[-1]
            file_name = f"command-{new.kid[:16]}.key"
            if not write_private_file(self.key_dir / file_name, private_key_pem(key)):
                raise CommandKeyError(f"{self.key_dir / file_name} exists already")
            old.retires_at = now + overlap
            session.add(
                CommandKey(
                    kid=new.kid, public_key=new.public_key_b64, key_file=file_name, created_at=now
                )
            )
        self._signers[new.kid] = new
        return Rotation(old.kid, new, now + overlap)

    def retire_expired(self) -> list[str]:
        """Delete the private files of keys past their retirement (never ``cloud.key``);
        return their key ids."""
        now = self.clock()
        done: list[str] = []
        with self.sessions() as session:
            for row in self._rows(session):
                if row.retires_at is None or as_utc(row.retires_at) > now:
                    continue
                self._signers.pop(row.kid, None) if row.kid != self.base.kid else None
                if row.key_file != BASE_KEY_FILE and self.key_dir is not None:
                    path = self.key_dir / row.key_file
                    if path.exists():
                        path.unlink()
                        done.append(row.kid)
        return done
