"""The gateway's Ed25519 identity: made on the gateway, private key kept in a 0600 file.

The key id is the RFC 7638 JWK thumbprint of the public key, so the cloud can recompute it
from the registered public key and nobody has to invent ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from edge.wire import key_id, load_public_key_b64, public_key_b64, public_key_raw
from edge.wire.files import (
    PrivateFileError,
    load_private_key_pem,
    private_key_pem,
    read_private_file,
    write_private_file,
)

__all__ = [
    "GatewayIdentity",
    "KeyFileError",
    "key_id",
    "load_public_key_b64",
    "public_key_b64",
    "public_key_raw",
]


class KeyFileError(Exception):
    """The key file is missing, unreadable, too open, or not an Ed25519 private key."""


@dataclass(frozen=True)
class GatewayIdentity:
    """A gateway's signing key and the id the cloud knows it by."""

    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def kid(self) -> str:
        return key_id(self.public_key)

    @classmethod
    def create(cls, path: Path) -> GatewayIdentity:
        """Make a new key pair and write the private key to ``path`` with mode 0600.

        Refuses to overwrite an existing key: replacing a gateway's identity is a
        deliberate rotation, not a side effect.
        """
        key = Ed25519PrivateKey.generate()
        if not write_private_file(path, private_key_pem(key)):
            raise KeyFileError(f"{path}: a key already exists; refusing to replace it")
        return cls(key)

    @classmethod
    def load(cls, path: Path) -> GatewayIdentity:
        """Read the private key written by :meth:`create`; the file must not be group/world
        readable."""
        try:
            return cls(load_private_key_pem(read_private_file(path, "gateway key"), path))
        except PrivateFileError as exc:
            raise KeyFileError(str(exc)) from None

    @classmethod
    def load_or_create(cls, path: Path) -> GatewayIdentity:
        return cls.load(path) if path.exists() else cls.create(path)
