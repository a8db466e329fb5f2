"""``LoopHistogram`` is exposed exactly as prometheus_client's ``Histogram`` is."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import generate_latest

from obs.histogram import LoopHistogram
from obs.metrics import LATENCY_BUCKETS

# On a bound, between bounds, under the first, over the last, zero and large.
VALUES = [0.0005, 0.0004, 0.001, 0.0011, 0.003, 1, 1.0000001, 180, 181, 1e9, 0.0, 0.25]


def exposition(registry: CollectorRegistry) -> list[str]:
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


@pytest.mark.parametrize("buckets", [LATENCY_BUCKETS, (1, 2, 4, 8, 16, 32, 64, 128, 256),
                                     (0.5, math.inf)])
def test_the_same_text_as_prometheus_client(buckets: tuple[float, ...]) -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("x_seconds", "help text", registry=theirs, buckets=buckets)
    mine = LoopHistogram("x_seconds", "help text", registry=ours, buckets=buckets)
    assert exposition(theirs) == exposition(ours)  # nothing observed yet
    for value in VALUES:
        reference.observe(value)
        mine.observe(value)
    assert exposition(theirs) == exposition(ours)
    assert any('le="+Inf"} 12.0' in line for line in exposition(ours))


def test_labelled_children_each_exposed() -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("y_seconds", "h", ["service", "route"], registry=theirs,
                          buckets=LATENCY_BUCKETS)
    mine = LoopHistogram("y_seconds", "h", labelnames=["service", "route"], registry=ours,
                         buckets=LATENCY_BUCKETS)
    for route, value in [("/a", 0.002), ("/b", 3.0), ("/a", 0.02)]:
        reference.labels("ingest", route).observe(value)
        mine.labels("ingest", route).observe(value)
    assert exposition(theirs) == exposition(ours)


def test_misuse_of_labels_is_refused() -> None:
    registry = CollectorRegistry()
    labelled = LoopHistogram("z_seconds", "h", labelnames=["route"], registry=registry,
                             buckets=(1,))
    with pytest.raises(ValueError, match="route"):
        labelled.observe(1.0)
    with pytest.raises(ValueError, match="route"):
        labelled.labels("a", "b")
    with pytest.raises(ValueError):  # the registry refuses a second metric of the name
        LoopHistogram("z_seconds", "h", registry=registry, buckets=(1,))
