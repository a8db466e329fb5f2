"""TensorRT's options: engine and timing caches on disk, FP16 on request, and a model that
still loads when TensorRT refuses them. No GPU here: ONNX Runtime falls back to the CPU
for a TensorRT session, so what these tests run is what inferq hands it."""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from runner import models
from runner.errors import ModelLoadError
from runner.models import ModelCache
from runner.settings import RunnerSettings
from runner.tensorrt import TENSORRT, TensorRTOptions, with_tensorrt_options
from schemas.messages import ModelRef
from tests.onnx_models import add_model

SHA = "ab" * 32
SESSION = ort.InferenceSession  # the real one, for the stand-in below
TRT_FIRST = [TENSORRT, "CUDAExecutionProvider", "CPUExecutionProvider"]


def test_caches_live_per_onnx_runtime_version_and_model(tmp_path: Path) -> None:
    options = TensorRTOptions(cache_root=tmp_path / "trt").for_model(SHA)
    versioned = tmp_path / "trt" / f"ort-{ort.__version__}"
    assert options == {
        "trt_fp16_enable": "False",
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(versioned / SHA),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(versioned),
    }
    assert (versioned / SHA).is_dir()


def test_no_cache_root_keeps_nothing_on_disk_and_fp16_is_asked_for_by_name() -> None:
    assert TensorRTOptions(fp16=True).for_model(SHA) == {"trt_fp16_enable": "True"}


def test_only_tensorrt_gets_the_options(tmp_path: Path) -> None:
    trt = TensorRTOptions(cache_root=tmp_path)
    cpu = ["CPUExecutionProvider"]
    assert with_tensorrt_options(cpu, trt, SHA) == cpu
    assert not (tmp_path / f"ort-{ort.__version__}").exists()  # no TensorRT, no folders
    got = with_tensorrt_options(TRT_FIRST, trt, SHA)
    assert got[0] == (TENSORRT, trt.for_model(SHA))
    assert got[1:] == TRT_FIRST[1:]


def test_settings() -> None:
    default = RunnerSettings.from_env({"INFERQ_RUNNER_CACHE_DIR": "/var/cache/inferq"})
    assert default.trt_cache_dir == Path("/var/cache/inferq/tensorrt")
    assert default.trt_fp16 is False
    off = RunnerSettings.from_env({"INFERQ_TRT_CACHE": "0", "INFERQ_TRT_FP16": "1"})
    assert off.trt_cache_dir is None and off.trt_fp16 is True


def _model_file(tmp_path: Path, data: bytes) -> ModelRef:
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    return ModelRef(name="m", version="1", uri=path.as_uri(),
                    sha256=hashlib.sha256(data).hexdigest())


async def _load(ref: ModelRef, trt: TensorRTOptions, tmp_path: Path) -> models.LoadedModel:
    with ThreadPoolExecutor(1) as ex:
        cache = ModelCache(providers=TRT_FIRST, cache_dir=tmp_path / "c", max_models=1,
                           intra_op_threads=1, executor=ex, tensorrt=trt)
        return await cache.get(ref)


async def test_a_tensorrt_model_loads_with_its_cache_and_runs(tmp_path: Path) -> None:
    ref = _model_file(tmp_path, add_model())
    model = await _load(ref, TensorRTOptions(cache_root=tmp_path / "trt"), tmp_path)
    assert (tmp_path / "trt" / f"ort-{ort.__version__}" / ref.sha256).is_dir()
    (y,) = model.session.run(None, {"x": np.zeros((2, 4), np.float32)})
    np.testing.assert_array_equal(y, np.ones((2, 4), np.float32))


class RefusingTensorRT:
    """Stands in for ORT where TensorRT would refuse its options (no GPU here to make it
    do so): creating a session with provider options raises, plain names delegate."""

    calls: list[list[Any]] = []

    def __new__(cls, path: str, sess_options: Any = None,
                providers: list[Any] | None = None) -> Any:
        cls.calls.append(list(providers or []))
        if any(isinstance(p, tuple) for p in providers or []):
            raise RuntimeError("TensorRT EP: invalid trt_engine_cache_path")
        return SESSION(path, sess_options=sess_options, providers=providers)


async def test_refused_options_load_the_model_without_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ref = _model_file(tmp_path, add_model())
    RefusingTensorRT.calls = []
    monkeypatch.setattr(models.ort, "InferenceSession", RefusingTensorRT)
    with caplog.at_level(logging.WARNING, logger="runner.models"):
        model = await _load(ref, TensorRTOptions(cache_root=tmp_path / "trt"), tmp_path)
    assert [type(p[0]) for p in RefusingTensorRT.calls[:2]] == [tuple, str]
    assert "loading without TensorRT's options: TensorRT EP: invalid" in caplog.text
    (y,) = model.session.run(None, {"x": np.zeros((1, 4), np.float32)})
    assert y.tolist() == [[1.0] * 4]


async def test_a_cache_folder_that_cannot_be_made_loads_without_it(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache would go")
    ref = _model_file(tmp_path, add_model())
    model = await _load(ref, TensorRTOptions(cache_root=blocker), tmp_path)
    (y,) = model.session.run(None, {"x": np.zeros((1, 4), np.float32)})
    assert y.tolist() == [[1.0] * 4]


async def test_a_broken_model_still_fails_to_load_by_name(tmp_path: Path) -> None:
    ref = _model_file(tmp_path, b"not an onnx model")
    with pytest.raises(ModelLoadError, match="model m:1 does not load"):
        await _load(ref, TensorRTOptions(cache_root=tmp_path / "trt"), tmp_path)
