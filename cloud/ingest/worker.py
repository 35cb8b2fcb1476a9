"""The MQTT side of ingest: subscribe, hand messages to IngestService in batches, then ack.

Acknowledgement is manual: the broker hears PUBACK for a message only after its outcome is
durable, so a worker killed mid-batch leaves the message with the broker, which delivers it
again when the worker's persistent session comes back. With ``share_group`` set, several
workers split one shared subscription. paho's network thread only queues messages; a
preparing thread drains the queue in batches (up to ``max_batch`` messages,
``max_batch_bytes`` bytes of payload or ``max_wait_s`` seconds) and verifies them while a
committing thread writes the previous batch, so a slow store never blocks keep-alives and
CPU and I/O overlap.

Failures (decision 0013): a message the store refuses for its data is dead-lettered by the
service and acknowledged. An outage (StoreUnavailable, or any failure while preparing) is
retried with backoff doubling from ``retry_s`` up to ``max_retry_s``, acknowledging nothing;
a batch not written after ``max_attempts`` attempts is dead-lettered as ``store_failed``
(if the registry takes the letters; else it keeps being retried, as nothing can be made
durable). Every ``maintain_every_s`` the worker purges old dead letters and idle
duplicate-filter streams and logs its counters.
"""

from __future__ import annotations

import gc
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass

from cloud.ingest.service import IngestService, PreparedBatch, error_line
from edge.wire.mqtt import BrokerAddress, mqtt_client

log = logging.getLogger(__name__)


@dataclass
class _Message:
    topic: str
    payload: bytes
    mid: int
    qos: int
    attempts: int = 0  # failed preparations so far


class IngestWorker:
    """One MQTT session feeding an IngestService."""

    def __init__(
        self,
        service: IngestService,
        broker_url: str,
        *,
        client_id: str,
        share_group: str | None = None,
        max_batch: int = 200,
        max_batch_bytes: int = 2 * 1024 * 1024,
        max_wait_s: float = 0.02,
        retry_s: float = 1.0,
        max_retry_s: float = 60.0,
        max_attempts: int = 20,
        maintain_every_s: float = 3600.0,
    ) -> None:
        self.service = service
        self.broker = BrokerAddress.parse(broker_url)
        topic = service.topics.readings_filter()
        self.subscription = f"$share/{share_group}/{topic}" if share_group else topic
        self.max_batch = max_batch
        self.max_batch_bytes = max_batch_bytes
        self.max_wait_s = max_wait_s
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self.max_attempts = max_attempts
        self.maintain_every_s = maintain_every_s
        self._maintained_at = time.monotonic()
        self.subscribed = threading.Event()
        self._stopping = threading.Event()
        self._inbox: queue.Queue[_Message] = queue.Queue()
        # One batch may be prepared while the previous one is written: two threads, and a
        # hand-over queue of one so that memory stays bounded.
        self._prepared: queue.Queue[tuple[list[_Message], PreparedBatch]] = queue.Queue(1)
        self._threads = [
            threading.Thread(target=self._process, name="ingest-prepare", daemon=True),
            threading.Thread(target=self._commit, name="ingest-commit", daemon=True),
        ]
        self._client = mqtt_client(self.broker, client_id, clean_session=False, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def _on_connect(self, client, _userdata, _flags, reason_code, _props) -> None:  # type: ignore[no-untyped-def]
        if reason_code.is_failure:
            log.warning("ingest: broker refused connection: %s", reason_code)
            return
        client.subscribe(self.subscription, qos=1)

    def _on_subscribe(self, _client, _userdata, _mid, _codes, _props) -> None:  # type: ignore[no-untyped-def]
        log.info("ingest: subscribed to %s", self.subscription)
        self.subscribed.set()

    def _on_message(self, _client, _userdata, msg) -> None:  # type: ignore[no-untyped-def]
        self._inbox.put(_Message(msg.topic, msg.payload, msg.mid, msg.qos))

    def _next_batch(self) -> list[_Message]:
        try:
            batch = [self._inbox.get(timeout=0.2)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.max_wait_s
        size = len(batch[0].payload)
        # A byte bound as well as a count: a few large envelopes (a gateway catching up sends
        # up to 256 KiB each) make a batch that is prepared while the previous one is written,
        # rather than one batch the whole in-flight window long that nothing overlaps.
        while len(batch) < self.max_batch and size < self.max_batch_bytes:
            remaining = deadline - time.monotonic()
            try:
                batch.append(
                    self._inbox.get(timeout=max(remaining, 0))
                    if remaining > 0
                    else self._inbox.get_nowait()
                )
            except queue.Empty:
                break
            size += len(batch[-1].payload)
        return batch

    def _backoff(self, attempt: int) -> float:
        """Seconds to wait after the ``attempt``-th failure in a row (1, 2, 4 … capped)."""
        return min(self.retry_s * 2 ** min(attempt - 1, 30), self.max_retry_s)

    def _process(self) -> None:
        """Prepare batches (verify, validate: CPU) and hand them to the committer."""
        failures = 0
        while not self._stopping.is_set():
            self._maintain()
            batch = self._next_batch()
            if not batch:
                continue
            try:
                prepared = self.service.prepare([(m.topic, m.payload) for m in batch])
                failures = 0
            except Exception as exc:
                # The registry or store is unreachable (data faults are dead-lettered by
                # the service): nothing was acknowledged; retry the batch after a while,
                # but give up on messages that had their last attempt.
                failures += 1
                delay = self._backoff(failures)
                log.warning(
                    "ingest: batch of %d not verified (%s); retrying in %.1f s",
                    len(batch),
                    error_line(exc),
                    delay,
                )
                spent = []
                for m in batch:
                    m.attempts += 1
                    if m.attempts >= self.max_attempts:
                        spent.append(m)
                    else:
                        self._inbox.put(m)
                if spent:
                    detail = f"not verified after the worker's last attempt: {error_line(exc)}"
                    self._hand_over(
                        spent,
                        self.service.refuse_all([(m.topic, m.payload) for m in spent], detail),
                    )
                self._stopping.wait(delay)
                continue
            self._hand_over(batch, prepared)

    def _hand_over(self, batch: list[_Message], prepared: PreparedBatch) -> None:
        while not self._stopping.is_set():
            try:
                self._prepared.put((batch, prepared), timeout=0.2)
                return
            except queue.Full:
                pass

    def _commit(self) -> None:
        """Write prepared batches in order (I/O, overlapping the next preparation), then
        acknowledge their messages."""
        while not self._stopping.is_set():
            try:
                batch, prepared = self._prepared.get(timeout=0.2)
            except queue.Empty:
                continue
            attempt, last = 0, ""
            while not self._stopping.is_set():
                try:
                    if attempt >= self.max_attempts:
                        results = self.service.give_up(prepared, last)
                    else:
                        results = self.service.commit_isolating(prepared)
                    break
                except Exception as exc:
                    # Store or ledger down: keep the batch, retry; nothing was acknowledged.
                    attempt += 1
                    last = error_line(exc)
                    delay = self._backoff(attempt)
                    log.warning(
                        "ingest: batch of %d not stored, attempt %d of %d (%s); retrying in %.1f s",
                        len(batch),
                        attempt,
                        self.max_attempts,
                        last,
                        delay,
                    )
                    self._stopping.wait(delay)
            else:
                return
            for m, result in zip(batch, results, strict=True):
                if result.reason is not None:
                    log.warning(
                        "ingest: rejected %s: %s: %s", m.topic, result.reason, result.detail
                    )
                self._client.ack(m.mid, m.qos)

    def _maintain(self) -> None:
        if time.monotonic() - self._maintained_at < self.maintain_every_s:
            return
        self._maintained_at = time.monotonic()
        try:
            purged = self.service.maintain()
        except Exception as exc:
            log.warning(
                "ingest: upkeep failed (%s); next in %.0f s", error_line(exc), self.maintain_every_s
            )
            return
        log.info(
            "ingest: purged %s; counters %s",
            json.dumps(purged),
            json.dumps(self.service.stats.as_dict()),
        )

    def start(self, wait_s: float = 10.0) -> None:
        """Connect in the background and wait until the subscription is in place."""
        for thread in self._threads:
            thread.start()
        self._client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        self._client.loop_start()
        if not self.subscribed.wait(wait_s):
            self.stop()
            raise TimeoutError(
                f"no subscription to {self.subscription} on {self.broker.host}:"
                f"{self.broker.port} within {wait_s} s"
            )

    def run_forever(self) -> None:
        """Run until interrupted (the ``meterflow cloud ingest`` command)."""
        self.start(wait_s=60)
        tune_gc()
        try:
            while not self._stopping.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(5)
        self._client.disconnect()
        self._client.loop_stop()


#: Collections of the youngest generation after this many net allocations (CPython's default
#: is 700): ingest allocates a few objects per reading, none of them in cycles.
GC_GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    """Make the cyclic garbage collector cheap for a long-running ingest process.

    Ingest allocates and drops several objects per reading (tens of thousands a second) and
    creates no reference cycles on its way; with CPython's defaults the collector ran every
    700 allocations and rescanned every object alive since start-up, which cost about a
    third of the worker's CPU (decision 0026). Objects alive now (modules, the registry's
    metadata, caches) are frozen out of collection, and the youngest generation is collected
    every GC_GEN0_THRESHOLD allocations; reference counting still frees the rest at once.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)
