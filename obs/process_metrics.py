"""The process's own metrics on a service's registry: memory, CPU and file descriptors
(``process_*``), the cyclic collector's counts (``python_gc_*``), and how long each of its
collections stopped the process (``inferq_gc_pause_seconds``).

The services keep hundreds of thousands of objects, and a middle-generation collection
has paused the event loop for 0.2-0.45 s on a 2-core VM (README, Performance): such a
pause is invisible in request metrics until it shows up in their tails, so it is timed
here. One ``gc.callbacks`` hook per process feeds one histogram; every registry the
process serves (one in production, several in tests) exposes it.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import CollectorRegistry, GCCollector, Histogram, ProcessCollector

#: From a young collection (~12 ms on average, up to 25 ms, in the bench here) to the
#: pauses above.
PAUSE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

_PAUSES = Histogram("inferq_gc_pause_seconds",
                    "how long each cyclic garbage collection stopped the process",
                    ["generation"], registry=None, buckets=PAUSE_BUCKETS)
_BY_GENERATION = [_PAUSES.labels(generation=str(g)) for g in range(3)]
_started = 0.0


def _time_collection(phase: str, info: dict[str, Any]) -> None:
    global _started
    if phase == "start":
        _started = time.perf_counter()
    else:
        _BY_GENERATION[info["generation"]].observe(time.perf_counter() - _started)


def register_process_metrics(registry: CollectorRegistry) -> None:
    """Adds the process's metrics to ``registry``, which must not have them yet."""
    if _time_collection not in gc.callbacks:
        gc.callbacks.append(_time_collection)
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(_PAUSES)
