"""The process's own metrics: memory and CPU, the collector's counts, and its pauses."""

from __future__ import annotations

import gc

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from obs.process_metrics import register_process_metrics


def samples(registry: CollectorRegistry) -> dict[str, float]:
    text = generate_latest(registry).decode()
    return {s.name + "".join(f"{{{k}={v}}}" for k, v in sorted(s.labels.items())): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_every_collection_is_timed_and_the_process_is_described() -> None:
    a, b = CollectorRegistry(), CollectorRegistry()
    register_process_metrics(a)
    register_process_metrics(b)  # a second registry in the same process (tests do so)
    before = samples(a)
    gc.collect()
    after, other = samples(a), samples(b)
    count = "inferq_gc_pause_seconds_count{generation=2}"
    assert after[count] == before[count] + 1  # one hook, however many registries
    assert other[count] == after[count]
    assert after["inferq_gc_pause_seconds_sum{generation=2}"] > before[
        "inferq_gc_pause_seconds_sum{generation=2}"]
    assert after["process_resident_memory_bytes"] > 10 * 2**20
    assert after["process_cpu_seconds_total"] > 0
    assert after["python_gc_collections_total{generation=2}"] >= 1
