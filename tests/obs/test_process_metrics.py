"""The process's own metrics: memory and CPU, the collector's counts, and its pauses."""

from __future__ import annotations

import gc

from prometheus_client import CollectorRegistry, generate_latest

from obs.process_metrics import register_process_metrics
from tests.metrics_text import Samples, samples, value


def scrape(registry: CollectorRegistry) -> Samples:
    return samples(generate_latest(registry).decode())


def test_every_collection_is_timed_and_the_process_is_described() -> None:
    a, b = CollectorRegistry(), CollectorRegistry()
    register_process_metrics(a)
    register_process_metrics(b)  # a second registry in the same process (tests do so)
    before = scrape(a)
    gc.collect()
    after, other = scrape(a), scrape(b)
    count, total = "inferq_gc_pause_seconds_count", "inferq_gc_pause_seconds_sum"
    # One hook, however many registries serve it.
    assert value(after, count, generation="2") == value(before, count, generation="2") + 1
    assert value(other, count, generation="2") == value(after, count, generation="2")
    assert value(after, total, generation="2") > value(before, total, generation="2")
    assert value(after, "process_resident_memory_bytes") > 10 * 2**20
    assert value(after, "process_cpu_seconds_total") > 0
    assert value(after, "python_gc_collections_total", generation="2") >= 1
