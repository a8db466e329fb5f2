"""ONNX Runtime called directly: the ceiling the service is measured against."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from bench.models import BenchModel


@dataclass
class RawResult:
    p50_ms_batch1: float
    best_samples_s: float
    best_batch: int
    #: The execution provider the sessions ran on (the first of those given that loaded).
    provider: str = "CPUExecutionProvider"
    #: Best samples/s measured just before and just after the servers' runs (``bracket``).
    spread: tuple[float, float] | None = None


def bracket(before: RawResult, after: RawResult) -> RawResult:
    """Raw ORT measured just before and just after the servers' runs of a model: their
    mean, both kept. Measured once at the start, a host whose speed drifts would compare
    the servers with another moment's ceiling (1,477 vs 1,845 samples/s for mlp_big in two
    runs minutes apart here)."""
    faster = after if after.best_samples_s > before.best_samples_s else before
    return RawResult((before.p50_ms_batch1 + after.p50_ms_batch1) / 2,
                     (before.best_samples_s + after.best_samples_s) / 2, faster.best_batch,
                     before.provider, (before.best_samples_s, after.best_samples_s))


def session(model: BenchModel, threads: int, providers: Sequence[str] = ("CPUExecutionProvider",)
            ) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(model.path), opts, providers=list(providers))


def measure(model: BenchModel, seconds: float, batches: tuple[int, ...] = (1, 8, 32, 64),
            providers: Sequence[str] = ("CPUExecutionProvider",)) -> RawResult:
    """Batch-1 latency on one thread; best samples/s over batch sizes and thread counts;
    on ``providers`` (the runner's, so a GPU run compares GPU with GPU)."""
    cores = len(os.sched_getaffinity(0))
    s1 = session(model, 1, providers)
    feeds = model.feeds(1)
    lat: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        s1.run(None, feeds)
        lat.append(time.perf_counter() - t0)
    best, best_b = 0.0, 1
    for threads in sorted({1, cores}):
        s = s1 if threads == 1 else session(model, threads, providers)
        for b in batches:
            feeds = model.feeds(b)
            s.run(None, feeds)
            n = 0
            t0 = time.perf_counter()
            end = t0 + seconds / len(batches)
            while time.perf_counter() < end:
                s.run(None, feeds)
                n += b
            rate = n / (time.perf_counter() - t0)
            if rate > best:
                best, best_b = rate, b
    return RawResult(float(np.percentile(lat, 50)) * 1000, best, best_b, s1.get_providers()[0])
