"""The gateway's Ed25519 identity: made on the gateway, private key kept in a 0600 file.

The key id is the RFC 7638 JWK thumbprint of the public key, so the cloud can recompute it
from the registered public key and nobody has to invent ids.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from edge.wire import key_id, load_public_key_b64, public_key_b64, public_key_raw

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
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeyFileError(f"{path}: a key already exists; refusing to replace it") from None
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        return cls(key)

    @classmethod
    def load(cls, path: Path) -> GatewayIdentity:
        """Read the private key written by :meth:`create`; the file must not be group/world
        readable."""
        try:
            mode = path.stat().st_mode & 0o777
            data = path.read_bytes()
        except OSError as exc:
            raise KeyFileError(f"{path}: cannot read the gateway key: {exc.strerror}") from None
        if mode & 0o077:
            raise KeyFileError(f"{path}: mode {mode:o} lets others read the key; expected 600")
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except ValueError as exc:
            raise KeyFileError(f"{path}: not a PEM private key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(f"{path}: expected an Ed25519 key, got {type(key).__name__}")
        return cls(key)

    @classmethod
    def load_or_create(cls, path: Path) -> GatewayIdentity:
        return cls.load(path) if path.exists() else cls.create(path)
