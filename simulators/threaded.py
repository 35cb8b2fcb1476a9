"""Running a simulator's asyncio TCP server on its own event loop in a daemon thread, so
synchronous tests, the demo and benches can use it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Protocol

from simulators.pty_line import Responder


class AsyncServer(Protocol):
    async def start(self, host: str, port: int) -> int: ...

    async def stop(self) -> None: ...


def run_in_thread(
    server: AsyncServer, host: str, port: int, name: str
) -> tuple[int, Callable[[], None]]:
    """Start ``server`` on a new loop in a daemon thread; returns the bound port and a
    function that stops the server and joins the thread."""
    loop = asyncio.new_event_loop()
    bound: Future[int] = Future()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            bound.set_result(loop.run_until_complete(server.start(host, port)))
        except BaseException as exc:  # handed to the caller through the future
            bound.set_exception(exc)
            loop.close()
            return
        loop.run_forever()
        loop.run_until_complete(server.stop())
        loop.close()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    bound_port = bound.result(timeout=10)

    def stop() -> None:
        if thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)

    return bound_port, stop


class LineTcpServer:
    """A simulated line behind a TCP port, like a serial device server in transparent
    mode. One transaction at a time across connections; each connection gets its own
    responder (received bytes → (reply bytes, delay s) pairs, see ``simulators.pty_line``)."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._bus = asyncio.Lock()
        self._clients: set[asyncio.Task[object]] = set()

    def responder(self) -> Responder:
        raise NotImplementedError

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen; returns the bound port (pass 0 for a free one)."""
        self._server = await asyncio.start_server(self._serve, host, port)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop every client connection."""
        if self._server is None:
            return
        self._server.close()
        for task in list(self._clients):
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Kept so stop() can drop live connections (Server.close() leaves them open).
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        respond = self.responder()
        try:
            while data := await reader.read(4096):
                async with self._bus:
                    for reply, delay_s in respond(data):
                        if delay_s:
                            await asyncio.sleep(delay_s)
                        writer.write(reply)
                        await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass  # the client hung up, or the server is stopping
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()
            # Last, so that stop() still waits for this task while it closes the socket.
            if task is not None:
                self._clients.discard(task)
