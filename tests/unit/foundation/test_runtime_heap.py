"""Start-up objects are frozen out of garbage collection (a full collection over them was the
intake's p99: 80 ms against 22-30 ms with the heap frozen, `make bench`)."""

from __future__ import annotations

import gc

from shared.runtime import freeze_startup_heap, tune_collector_for_batches, tune_collector_for_requests


def test_freeze_moves_existing_objects_out_of_the_collected_generations():
    long_lived = [object() for _ in range(1000)]
    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        freeze_startup_heap()
        assert gc.get_freeze_count() >= len(long_lived)
        assert sum(gc.get_count()) < 100  # everything tracked before the call is in the permanent generation
    finally:
        gc.unfreeze()


def test_batch_consumers_collect_young_objects_about_once_per_batch_not_per_700():
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)  # Python's defaults
        tune_collector_for_batches()
        young, middle, old = gc.get_threshold()
        # A young collection per ~100,000 new container objects (a few hundred tickets of a batch
        # of 2,000), a full one per 40 million: not one per 700 and per 70,000.
        assert young >= 100_000 and young * middle * old >= 40_000_000
    finally:
        gc.set_threshold(*before)


def test_a_request_server_collects_young_objects_every_10_000_not_every_700():
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        tune_collector_for_requests()
        young, middle, old = gc.get_threshold()
        # Rare enough to cost little per request, small enough to pause a request by ~1 ms at most.
        assert 5_000 <= young <= 20_000 and young * middle * old >= 1_000_000
    finally:
        gc.set_threshold(*before)
