"""TensorRT provider options: engines and timing cache kept on disk, FP16 on request.

Without an engine cache TensorRT builds a model's engines again at every load (seconds
to minutes for a large model), and with dynamic batch sizes again as batches outside
the built range arrive (a GPU session's warm-up runs at batch 1 and at the batch limit,
so the batcher's range is built while loading: ``runner.models.warm_up_rows``).
With the cache a restart loads what was built instead: engines live under
``<root>/ort-<version>/<model sha256>``, the timing cache (shared by all models) in the
version's folder; the runner's cache bound (``runner.disk_cache``) removes a model's
engines once they are the least recently used. Not run on a GPU here
(none was lent); the option names are those of the shipped TensorRT provider library.

Option names and values are ONNX Runtime's (``trt_*``, booleans as ``"True"`` /
``"False"``, which its parser accepts).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

TENSORRT = "TensorrtExecutionProvider"

#: What ``ort.InferenceSession(providers=...)`` takes: a name, or a name and its options.
ProviderSpec = str | tuple[str, dict[str, str]]


@dataclass(frozen=True, slots=True)
class TensorRTOptions:
    #: Where engines and the timing cache are kept; None keeps nothing on disk.
    cache_root: Path | None = None
    #: Let TensorRT pick FP16 kernels (faster on most GPUs, results differ slightly).
    fp16: bool = False

    def for_model(self, sha256: str) -> dict[str, str]:
        """The provider options for one model, creating its cache folders."""
        options = {"trt_fp16_enable": str(self.fp16)}
        if self.cache_root is not None:
            versioned = self.cache_root / f"ort-{ort.__version__}"
            engines = versioned / sha256
            engines.mkdir(parents=True, exist_ok=True)
            os.utime(engines)  # used now: the runner's cache prunes the least recent
            options.update({
                "trt_engine_cache_enable": "True",
                "trt_engine_cache_path": str(engines),
                "trt_timing_cache_enable": "True",
                "trt_timing_cache_path": str(versioned),
            })
        return options


def with_tensorrt_options(providers: Sequence[str], options: TensorRTOptions,
                          sha256: str) -> list[ProviderSpec]:
    """``providers`` with TensorRT, where it is one of them, given its options."""
    if TENSORRT not in providers:
        return list(providers)
    trt = options.for_model(sha256)
    return [(p, trt) if p == TENSORRT else p for p in providers]
