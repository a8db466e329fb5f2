"""Execution providers: the ones that really load here, in the order asked for.

onnxruntime-gpu lists the CUDA and TensorRT providers even where their libraries or a
GPU are missing, and then quietly falls back to the CPU at session creation. So the
runner probes once with a one-node model and keeps only the providers the probe
session actually got.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Sequence

import onnxruntime as ort

log = logging.getLogger(__name__)


#: The probe: a one-node model (``Identity`` on ``float[1]``, opset 13, IR 8), serialized.
#: Bytes rather than built with ``onnx.helper`` so that a runner never imports ``onnx``
#: (8 MiB resident and ~30 ms at start, for 69 bytes); tests build the same model with
#: the helpers and compare.
PROBE_MODEL = bytes.fromhex(
    "08083a3b0a100a017812017922084964656e74697479120570726f62655a0f0a0178120a0a0808"
    "0112040a020801620f0a0179120a0a08080112040a02080142040a00100d"
)


def usable_providers(wanted: Sequence[str]) -> list[str]:
    available = set(ort.get_available_providers())
    candidates = [p for p in wanted if p in available]
    if "CPUExecutionProvider" not in candidates:
        candidates.append("CPUExecutionProvider")
    # The probe's fallbacks are expected: keep ORT's error lines and its printed
    # "EP Error" banner out of the logs, then restore warnings.
    ort.set_default_logger_severity(4)
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    got = ["CPUExecutionProvider"]
    try:
        # Every one asked for but the CPU, wherever the CPU stands in the list.
        for provider in candidates:
            if provider == "CPUExecutionProvider":
                continue
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    session = ort.InferenceSession(PROBE_MODEL, sess_options=opts,
                                                   providers=[provider, "CPUExecutionProvider"])
                except Exception as exc:  # a provider that fails hard at creation
                    log.info("provider %s does not load: %s", provider, exc)
                    continue
            if provider in session.get_providers():
                got.append(provider)
    finally:
        ort.set_default_logger_severity(2)
    chosen = [p for p in candidates if p in got]
    log.info("execution providers", extra={"providers": chosen,
                                            "available": sorted(available)})
    return chosen


#: Providers whose sessions run on an NVIDIA GPU.
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def device_of(providers: Sequence[str]) -> str:
    if providers and providers[0] in GPU_PROVIDERS:
        return "cuda"
    return "cpu"
