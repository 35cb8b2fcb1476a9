"""An MQTT broker inside this process (amqtt), for the demo's embedded defaults.

Production and the tests use a real broker (mosquitto); this one exists so that
``make demo`` needs no root and no server to install. It listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

from amqtt.broker import Broker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedBroker:
    """amqtt on its own event loop in a daemon thread; anonymous, loopback only."""

    def __init__(self, port: int = 0) -> None:
        self.port = port or free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="mqtt-broker", daemon=True
        )
        self._broker: Broker | None = None
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> str:
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
        self._thread.start()

        async def _start() -> Broker:
            broker = Broker(config, loop=self._loop)
            await broker.start()
            return broker

        self._broker = asyncio.run_coroutine_threadsafe(_start(), self._loop).result(timeout_s)
        return self.url

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._broker is not None:
            asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(timeout_s)
            self._broker = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout_s)
