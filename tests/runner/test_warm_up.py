"""Warm-up on load: batch 1 everywhere, and the batcher's limit too on GPU sessions, so
TensorRT builds the whole batch range while loading (runner.models.warm_up_rows). No GPU
here: a real CPU session stands in for one that reports CUDA, which is what the runner
decides by; the limit used is the request's (its task's or model's), the preloaded
model's, else the runner's default, through real HTTP on both buses."""

from __future__ import annotations

import hashlib
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from runner import models
from runner.models import ModelCache, warm_up_rows
from schemas.messages import ModelRef
from tests.harness import running_stack
from tests.onnx_models import add_model, image_model, write

SESSION = ort.InferenceSession  # the real one, for the stand-in below
CPU = "CPUExecutionProvider"


class RecordingSession:
    """A real CPU session that reports ``reported`` as the providers that loaded (CUDA:
    no GPU here) and records the first dimension of every run's inputs."""

    rows: list[int] = []
    reported = ["CUDAExecutionProvider", CPU]

    def __new__(cls, path: str | bytes, sess_options: Any = None,
                providers: list[Any] | None = None) -> Any:
        if isinstance(path, bytes):  # the runner's provider probe: left as it is
            return SESSION(path, sess_options=sess_options, providers=providers)
        return super().__new__(cls)

    def __init__(self, path: str, sess_options: Any = None,
                 providers: list[Any] | None = None) -> None:
        self._session = SESSION(path, sess_options=sess_options, providers=[CPU])

    def get_providers(self) -> list[str]:
        return type(self).reported

    def run(self, names: Any, feeds: dict[str, np.ndarray], *args: Any) -> Any:
        type(self).rows.append(next(iter(feeds.values())).shape[0])
        return self._session.run(names, feeds, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def _ref(tmp_path: Path, data: bytes) -> ModelRef:
    path = tmp_path / f"{hashlib.sha256(data).hexdigest()}.onnx"
    path.write_bytes(data)
    return ModelRef(name="m", version="1", uri=path.as_uri(),
                    sha256=hashlib.sha256(data).hexdigest())


async def _load(ref: ModelRef, tmp_path: Path, *, warm_batch: int, max_batch: int = 0
                ) -> models.LoadedModel:
    with ThreadPoolExecutor(1) as ex:
        cache = ModelCache(providers=["CUDAExecutionProvider", CPU], cache_dir=tmp_path / "c",
                           max_models=2, intra_op_threads=1, executor=ex,
                           warm_batch=warm_batch)
        return await cache.get(ref, max_batch=max_batch)


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> type[RecordingSession]:
    RecordingSession.rows = []
    RecordingSession.reported = ["CUDAExecutionProvider", CPU]
    monkeypatch.setattr(models.ort, "InferenceSession", RecordingSession)
    return RecordingSession


async def test_a_gpu_session_warms_up_at_one_row_and_at_the_batch_limit(
        tmp_path: Path, session: type[RecordingSession]) -> None:
    model = await _load(_ref(tmp_path, add_model()), tmp_path, warm_batch=32)
    assert model.providers[0] == "CUDAExecutionProvider"
    assert session.rows == [1, 32]


async def test_the_requests_own_batch_limit_wins_over_the_runners(
        tmp_path: Path, session: type[RecordingSession]) -> None:
    await _load(_ref(tmp_path, add_model()), tmp_path, warm_batch=32, max_batch=8)
    assert session.rows == [1, 8]


async def test_a_fixed_first_dimension_warms_up_once(
        tmp_path: Path, session: type[RecordingSession]) -> None:
    await _load(_ref(tmp_path, image_model()), tmp_path, warm_batch=32)
    assert session.rows == [1]


async def test_the_cpu_provider_warms_up_at_one_row_only(
        tmp_path: Path, session: type[RecordingSession]) -> None:
    session.reported = [CPU]
    model = await _load(_ref(tmp_path, add_model()), tmp_path, warm_batch=32)
    assert model.providers == (CPU,)
    assert session.rows == [1]


def test_unbatchable_models_warm_up_once(tmp_path: Path) -> None:
    add = SESSION(str(write(tmp_path / "add.onnx", add_model())), providers=[CPU])
    specs = {s.name: s for s in models._specs(add.get_inputs())}
    ref = ModelRef(name="m", version="1", uri="file:///m", sha256="00" * 32)
    batched = models.LoadedModel(ref=ref, session=add, inputs=specs, outputs=("y",),
                                 providers=("TensorrtExecutionProvider", CPU))
    assert warm_up_rows(batched, 32) == (1, 32)
    assert warm_up_rows(batched, 1) == (1,)
    unbatched = models.LoadedModel(ref=ref, session=add, inputs=specs, outputs=("y",),
                                   providers=("TensorrtExecutionProvider", CPU),
                                   batchable=False)
    assert warm_up_rows(unbatched, 32) == (1,)


async def test_the_limit_comes_from_the_task_or_the_preloaded_model_over_http(
        kafka_bootstrap: str | None, tmp_path: Path, session: type[RecordingSession]
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    x = [{"tensorName": "x", "payloadType": "Json", "payload": json.dumps([[1.0] * 4])}]
    # IO binding off: the stand-in reports CUDA, which would bind outputs on a device.
    runner = {"io_binding": "off", "max_batch_size": 6}
    async with running_stack(kafka_bootstrap, tmp_path, prefix=prefix,
                             runner_overrides=runner) as s:
        model = await s.upload_model("add", add_model())
        key = await s.create_key("acme")
        r = await s.admin("POST", "/admin/tasks", json={
            "account": "acme", "model": model, "name": "four", "maxBatchSize": 4})
        assert r.status_code == 201, r.text
        body = (await s.submit(r.json()["id"], key, x)).json()
        assert body["state"] == "success" and body["data"] == {"y": [[2.0] * 4]}
        assert session.rows == [1, 4, 1]  # warm-up at the task's limit, not the runner's 6
        session.rows = []
        wide = await s.create_task("acme", await s.upload_model("wide", add_model(8)))
        x8 = [{"tensorName": "x", "payloadType": "Json", "payload": json.dumps([[1.0] * 8])}]
        assert (await s.submit(wide, key, x8)).json()["state"] == "success"
        assert session.rows == [1, 6, 1]  # no task or model limit: the runner's default
        r = await s.admin("PATCH", f"/admin/models/{model}", json={"maxBatchSize": 5})
        assert r.status_code == 200, r.text
    session.rows = []
    async with running_stack(kafka_bootstrap, tmp_path, prefix=prefix,
                             runner_overrides={**runner, "preload": ("add",)}):
        assert session.rows == [1, 5]  # the model's own limit, before any request
