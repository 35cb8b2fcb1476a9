"""A simulated line on a pseudo-terminal: clients open ``slave_path`` like a serial port.

The slave side is put in raw mode (8N1; pseudo-terminals here refuse even parity after the
first configuration). The server keeps the slave open itself so the master end does not
see a hang-up between clients. What the meters answer is the protocol's business: a
subclass gives a responder that turns received bytes into (reply bytes, delay s) pairs.
"""

from __future__ import annotations

import os
import select
import threading
import tty
from collections.abc import Callable, Iterable

#: received bytes → replies to write, each after its delay in seconds
Responder = Callable[[bytes], Iterable[tuple[bytes, float]]]


class PtyLineServer:
    """Serves one responder on a fresh pseudo-terminal in a background thread."""

    name = "pty-line"

    def __init__(self) -> None:
        self.slave_path = ""
        self.slave_fd = -1
        self._master_fd = -1
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def responder(self) -> Responder:
        raise NotImplementedError

    def start(self) -> str:
        """Open the pseudo-terminal and serve it; returns the slave device path."""
        self._master_fd, self.slave_fd = os.openpty()
        tty.setraw(self.slave_fd)
        self.slave_path = os.ttyname(self.slave_fd)
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._run, args=(self.responder(),), name=self.name, daemon=True
        )
        self._thread.start()
        return self.slave_path

    def stop(self) -> None:
        """Stop serving and close both ends."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for fd in (self._master_fd, self.slave_fd):
            if fd >= 0:
                os.close(fd)
        self._master_fd = self.slave_fd = -1

    def __enter__(self):  # type: ignore[no-untyped-def]
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, respond: Responder) -> None:
        master = self._master_fd
        while not self._stopping.is_set():
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(master, 4096)
            except OSError:
                continue  # no slave open at this instant; keep serving
            for reply, delay_s in respond(data):
                if self._stopping.wait(delay_s):
                    return
                os.write(master, reply)
