"""Private files (mode 0600): the gateway's and the cloud's Ed25519 keys and the web secret,
written once, never replaced, refused when others may read them."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


class PrivateFileError(Exception):
    """A private file (key or secret) is unreadable, readable by others, or not what it should
    be; the message names the file and what was expected."""


def private_dir(path: Path) -> Path:
    """``path`` and its missing parents created with mode 0700 (set explicitly, whatever the
    umask); a directory that exists already is left as it is (the operator chose it)."""
    missing = []
    here = path
    while not here.exists():
        missing.append(here)
        here = here.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
        directory.chmod(0o700)
    return path


def private_sqlite_file(path: Path) -> None:
    """Make the SQLite file at ``path`` private before SQLite opens it: created empty with
    mode 0600 (in a 0700 directory when that is missing), or narrowed to 0600 if others may
    read it (its ``-wal`` and ``-shm`` files too, which SQLite creates with the file's mode)."""
    private_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists() and file.stat().st_mode & 0o077:
            file.chmod(0o600)


def write_private_file(path: Path, data: bytes) -> bool:
    """Create ``path`` with mode 0600 holding ``data``; False if it exists already (never
    replaced: a concurrent process may have made it first). Missing directories of a key or
    secret are made its owner's only (:func:`private_dir`)."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return True


def read_private_file(path: Path, what: str) -> bytes:
    """The bytes of ``path``, which must not be readable by group or others (mode 600)."""
    try:
        mode = path.stat().st_mode & 0o777
        data = path.read_bytes()
    except OSError as exc:
        raise PrivateFileError(f"{path}: cannot read the {what}: {exc.strerror}") from None
    if mode & 0o077:
        raise PrivateFileError(f"{path}: mode {mode:o} lets others read the {what}; expected 600")
    return data


def load_or_create_private_file(path: Path, what: str, make: Callable[[], bytes]) -> bytes:
    """Read the private file at ``path``, or create it (mode 0600) with ``make()``."""
    if not path.exists():
        data = make()
        if write_private_file(path, data):
            return data
    return read_private_file(path, what)


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    """An Ed25519 private key as unencrypted PEM PKCS#8 (how key files are written)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key_pem(data: bytes, path: Path) -> Ed25519PrivateKey:
    """Parse the Ed25519 private key read from ``path``; PrivateFileError otherwise."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError as exc:
        raise PrivateFileError(f"{path}: not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise PrivateFileError(f"{path}: expected an Ed25519 key, got {type(key).__name__}")
    return key
