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
from onnx import TensorProto, helper

log = logging.getLogger(__name__)


def _probe_model() -> bytes:
    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph(
        [node], "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()  # type: ignore[no-any-return]


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
        for provider in candidates[:-1]:
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    session = ort.InferenceSession(_probe_model(), sess_options=opts,
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
