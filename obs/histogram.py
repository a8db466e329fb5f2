"""A Prometheus histogram cheap enough for every request on the event loop.

prometheus_client's ``Histogram.observe`` takes a lock for the sum and another for the
bucket and walks the bounds one by one: 0.66-0.99 us here (timeit, LATENCY_BUCKETS),
and a request on `inferq up` is observed six times (the runner's queue, batch wait,
inference and batch size, ingest's end to end and HTTP latency).
``LoopHistogram.observe`` bisects the bounds and adds to two plain numbers: 0.12-0.14
us. It is meant for values observed on one thread, the event
loop, which also serves ``/metrics``; without the locks, a scrape from another thread
could see a count and a sum that disagree by the observation in progress, never a
lost one. Exposed exactly as a prometheus_client histogram is (``_bucket`` with ``le``,
``_count``, ``_sum``), without the ``_created`` series.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString


class HistogramChild:
    """One label set's buckets: ``counts[i]`` values fell at or under ``bounds[i]`` and
    over the bound before it; the last bound is +Inf."""

    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: the first bound >= value, so a value equal to a bound is in it (le).
        self.counts[bisect_left(self._bounds, value)] += 1
        self.sum += value


class LoopHistogram:
    def __init__(self, name: str, documentation: str, *, registry: CollectorRegistry,
                 buckets: Sequence[float], labelnames: Sequence[str] = ()) -> None:
        bounds = sorted(float(b) for b in buckets)
        if not bounds or bounds[-1] != math.inf:
            bounds.append(math.inf)
        self.name = name
        self._documentation = documentation
        self._bounds = tuple(bounds)
        #: The ``le`` labels, written as prometheus_client writes them ("0.005", "1.0", "+Inf").
        self._le = tuple(floatToGoString(b) for b in bounds)  # type: ignore[no-untyped-call]
        self._labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], HistogramChild] = {}
        self._only = None if self._labelnames else self.labels()
        registry.register(self)

    def labels(self, *values: str) -> HistogramChild:
        if len(values) != len(self._labelnames):
            raise ValueError(f"{self.name}: labels {self._labelnames}, got {values!r}")
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = HistogramChild(self._bounds)
        return child

    def observe(self, value: float) -> None:
        """For a histogram without labels."""
        if self._only is None:
            raise ValueError(f"{self.name} has labels {self._labelnames}: use labels()")
        self._only.observe(value)

    def describe(self) -> list[Metric]:
        return [HistogramMetricFamily(self.name, self._documentation,
                                      labels=self._labelnames)]

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self._documentation,
                                       labels=self._labelnames)
        for values, child in list(self._children.items()):
            counts, total = list(child.counts), child.sum
            cumulative, buckets = 0, []
            for le, count in zip(self._le, counts, strict=True):
                cumulative += count
                buckets.append((le, cumulative))
            family.add_metric(list(values), buckets, total)
        yield family
