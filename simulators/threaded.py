"""Running a simulator's asyncio TCP server on its own event loop in a daemon thread, so
synchronous tests, the demo and benches can use it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Protocol


class AsyncServer(Protocol):
    async def start(self, host: str, port: int) -> int: ...

    async def stop(self) -> None: ...


def run_in_thread(server: AsyncServer, host: str, port: int,
                  name: str) -> tuple[int, Callable[[], None]]:
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
