"""How the ingest worker cuts its inbox into batches, and its garbage-collector set-up
(decision 0026). The worker is built but never connected: these are its own rules."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from cloud.ingest.service import IngestService
from cloud.ingest.worker import GC_GEN0_THRESHOLD, IngestWorker, _Message, tune_gc
from cloud.registry.db import open_registry
from cloud.series.sqlite import SqliteSeriesStore


@pytest.fixture
def service(tmp_path) -> Iterator[IngestService]:
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    store = SqliteSeriesStore(tmp_path / "series.sqlite")
    yield IngestService(registry, store)
    store.close()
    registry.kw["bind"].dispose()


def fill(worker: IngestWorker, sizes: list[int]) -> None:
    for mid, size in enumerate(sizes):
        worker._inbox.put(_Message("mf/v1/s1/gw1/up/readings", b"x" * size, mid, 1))


def test_a_batch_stops_at_its_byte_bound_as_well_as_its_count(service):
    worker = IngestWorker(
        service, "mqtt://127.0.0.1:1", client_id="batches", max_batch=4, max_batch_bytes=3000
    )
    fill(worker, [1000] * 7 + [10] * 6)
    assert [m.mid for m in worker._next_batch()] == [0, 1, 2]  # 3,000 bytes reached
    assert [m.mid for m in worker._next_batch()] == [3, 4, 5]
    assert [m.mid for m in worker._next_batch()] == [6, 7, 8, 9]  # 4 messages reached
    assert [m.mid for m in worker._next_batch()] == [10, 11, 12]  # the inbox ran dry


def test_an_envelope_larger_than_the_byte_bound_is_a_batch_of_its_own(service):
    worker = IngestWorker(
        service, "mqtt://127.0.0.1:1", client_id="big", max_batch=200, max_batch_bytes=1000
    )
    fill(worker, [5000, 10, 10])
    assert [m.mid for m in worker._next_batch()] == [0]
    assert [m.mid for m in worker._next_batch()] == [1, 2]


def test_tune_gc_freezes_start_up_objects_and_collects_young_ones_less_often():
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (GC_GEN0_THRESHOLD, *before[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
