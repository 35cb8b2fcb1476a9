"""Staff passwords: the rule a new password meets, and Argon2id hashing bounded under load.

The rule (decision 0017): at least :data:`MIN_PASSWORD_CHARS` characters (Unicode code
points), at most :data:`MAX_PASSWORD_CHARS`, at least :data:`MIN_DISTINCT_CHARS` different
characters, not the user name, and not in the common-password list shipped in
``data/common-passwords.txt`` (compared case-insensitively, also with spaces removed).

Argon2id with argon2-cffi's defaults takes 64 MiB of memory per hash for about 50 ms of CPU.
Unbounded, 40 parallel sign-ins took the server from 127 MiB to 1,985 MiB. :class:`BoundedHasher`
lets at most ``slots`` hashes run at once (each process; default: the CPU count, at most
4) and at most ``queue`` more wait for a slot; a sign-in beyond that is refused at once
(:class:`HashingBusy`, the web answers 429 with Retry-After) instead of queueing memory.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 200
MIN_DISTINCT_CHARS = 4
COMMON_PASSWORDS = Path(__file__).with_name("data") / "common-passwords.txt"
#: Hashes running at once in one process by default: one per CPU, at most 4 (4 × 64 MiB).
DEFAULT_HASH_SLOTS = max(1, min(4, os.cpu_count() or 1))
#: Sign-ins that may wait for a slot, per slot, before new ones are refused.
DEFAULT_QUEUE_PER_SLOT = 4
#: How long a waiting sign-in waits for a slot at most, in seconds.
DEFAULT_WAIT_S = 10.0


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords, case-folded (read once per process)."""
    text = COMMON_PASSWORDS.read_text(encoding="utf-8")
    return frozenset(line.strip().casefold() for line in text.splitlines() if line.strip())


def password_problem(password: str, username: str = "") -> str | None:
    """Why ``password`` may not be used by ``username`` (one English line), or None."""
    if len(password) < MIN_PASSWORD_CHARS:
        return f"a password needs at least {MIN_PASSWORD_CHARS} characters, got {len(password)}"
    if len(password) > MAX_PASSWORD_CHARS:
        return f"a password has at most {MAX_PASSWORD_CHARS} characters, got {len(password)}"
    if len(set(password)) < MIN_DISTINCT_CHARS:
        return f"a password needs at least {MIN_DISTINCT_CHARS} different characters"
    folded = password.casefold()
    if username and username.casefold() in (folded, folded.replace(" ", "")):
        return "a password may not be the user name"
    common = common_passwords()
    if folded in common or folded.replace(" ", "") in common:
        return "this password is on the list of common passwords; choose another"
    return None


class HashingBusy(Exception):
    """Too many password checks are running or waiting; try again after ``retry_after_s``."""

    def __init__(self, retry_after_s: int = 1) -> None:
        super().__init__(f"too many sign-ins at once; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class BoundedHasher:
    """Argon2id hashing and verification with at most ``slots`` running at once and at most
    ``queue`` callers waiting (the rest get :class:`HashingBusy` at once)."""

    def __init__(
        self,
        slots: int = DEFAULT_HASH_SLOTS,
        queue: int | None = None,
        wait_s: float = DEFAULT_WAIT_S,
        hasher: PasswordHasher | None = None,
    ) -> None:
        if slots < 1:
            raise ValueError(f"hash slots: expected at least 1, got {slots}")
        self.slots = slots
        self.queue = DEFAULT_QUEUE_PER_SLOT * slots if queue is None else queue
        self.wait_s = wait_s
        self.hasher = hasher or PasswordHasher()
        self._running = threading.BoundedSemaphore(slots)
        self._lock = threading.Lock()
        self._admitted = 0
        self.peak_admitted = 0  # the most callers running or waiting at once (for tests)

    @contextmanager
    def _slot(self, refuse_when_full: bool) -> Iterator[None]:
        with self._lock:
            if refuse_when_full and self._admitted >= self.slots + self.queue:
                raise HashingBusy()
            self._admitted += 1
            self.peak_admitted = max(self.peak_admitted, self._admitted)
        try:
            if not self._running.acquire(timeout=self.wait_s if refuse_when_full else None):
                raise HashingBusy()
            try:
                yield
            finally:
                self._running.release()
        finally:
            with self._lock:
                self._admitted -= 1

    def hash(self, password: str) -> str:
        """The Argon2id hash of ``password`` (waits for a slot; used for new passwords)."""
        with self._slot(refuse_when_full=False):
            return self.hasher.hash(password)

    def verify(self, stored: str, password: str) -> bool:
        """Whether ``password`` matches ``stored``; HashingBusy when the queue is full."""
        with self._slot(refuse_when_full=True):
            try:
                return self.hasher.verify(stored, password)
            except (VerificationError, InvalidHashError):
                return False

    def needs_rehash(self, stored: str) -> bool:
        """Whether ``stored`` was made with other parameters than today's."""
        return self.hasher.check_needs_rehash(stored)
