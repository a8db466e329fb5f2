"""The provider probe: its model is the one onnx's helpers build, it runs, the providers
that do not really load are dropped, and a runner's modules never import onnx."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from runner.providers import PROBE_MODEL, usable_providers

SESSION = ort.InferenceSession  # the real one, for the recording stand-in below


def test_probe_bytes_are_the_helper_built_model() -> None:
    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph(
        [node], "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    assert PROBE_MODEL == model.SerializeToString()


def test_probe_runs_on_the_cpu() -> None:
    session = ort.InferenceSession(PROBE_MODEL, providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": np.array([2.5], dtype=np.float32)})
    assert y.tolist() == [2.5]


def test_providers_that_do_not_load_are_dropped() -> None:
    available = ort.get_available_providers()
    got = usable_providers(["NoSuchExecutionProvider", *available])
    assert got[-1] == "CPUExecutionProvider"
    assert "NoSuchExecutionProvider" not in got
    assert got == [p for p in available if p in got]  # in the order asked for
    if not _gpu_present():
        # onnxruntime-gpu lists CUDA and TensorRT without a GPU; the probe drops them.
        assert got == ["CPUExecutionProvider"]


def test_cpu_is_added_last_and_the_rest_probed_wherever_cpu_stands(
        monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = [p for p in ort.get_available_providers() if p != "CPUExecutionProvider"]
    assert usable_providers(gpu)[-1] == "CPUExecutionProvider"
    # CPU asked for first: every provider after it is still probed, none dropped unseen.
    probed: list[str] = []

    def recording(model: bytes, sess_options: Any = None,
                  providers: list[str] | None = None) -> Any:
        probed.append((providers or [""])[0])
        return SESSION(model, sess_options=sess_options, providers=providers)

    monkeypatch.setattr(ort, "InferenceSession", recording)
    got = usable_providers(["CPUExecutionProvider", *gpu])
    assert probed == gpu
    assert got[0] == "CPUExecutionProvider"
    if not _gpu_present():
        assert got == ["CPUExecutionProvider"]


def test_a_runner_does_not_import_onnx() -> None:
    code = ("import sys, runner.app, runner.service, runner.models, bus.kafka, "
            "bus.embedded, inferq.serve; print('onnx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "False"


def _gpu_present() -> bool:
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True,
                              timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
