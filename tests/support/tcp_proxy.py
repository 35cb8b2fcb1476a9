"""A TCP relay on 127.0.0.1 that a test can cut: the network between a gateway and its
broker dropping mid-batch, without touching either of them."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time


class TcpProxy:
    """Relays 127.0.0.1:``port`` to ``target``; ``cut(seconds)`` drops every connection and
    refuses new ones for that long (connections are accepted and closed at once)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._down_until = 0.0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self.cuts = 0

    def start(self) -> int:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._accept, "127.0.0.1", 0), self._loop
        ).result(5)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if time.monotonic() < self._down_until:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    def cut(self, seconds: float) -> None:
        """Drop every relayed connection now; refuse new ones for ``seconds``."""
        self._down_until = time.monotonic() + seconds
        self.cuts += 1

        def _drop() -> None:
            for w in list(self._writers):
                w.transport.abort()

        self._loop.call_soon_threadsafe(_drop)

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut(0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
