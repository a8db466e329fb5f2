"""``INFERQ_RUNNER_PRELOAD``: a runner loads the models named before it takes requests, on
both buses through real HTTP; a name the registry does not hold stops it, named."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import pytest

from bus.factory import bus_for
from runner.preload import resolve
from runner.service import Runner
from runner.settings import DEFAULT_PROVIDERS, RunnerSettings
from schemas.env import SettingError
from schemas.registry import ModelRecord
from tests import onnx_models
from tests.harness import Stack, bus_settings, running_stack


async def loaded_models(s: Stack) -> list[str]:
    """The models the one runner's heartbeat lists, once it has sent one (bounded)."""
    deadline = time.monotonic() + 20
    while True:
        r = await s.admin("POST", "/engines/list")
        engines = r.json()["data"]  # the tasks API's version-1 wrapper
        if engines:
            assert engines[0]["models_loading"] == []  # preloads finish before any beat
            return list(engines[0]["models_loaded"])
        assert time.monotonic() < deadline, "no runner heartbeat within 20 s"
        await asyncio.sleep(0.05)


async def test_a_preloaded_model_is_loaded_before_any_request(
    kafka_bootstrap: str | None, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    async with running_stack(kafka_bootstrap, tmp_path, prefix=prefix) as s:
        await s.upload_model("add", onnx_models.add_model(), version="1")
        await s.upload_model("add", onnx_models.add_model(width=8), version="2")
        await s.upload_model("ints", onnx_models.int_model(), version="1")
        assert await loaded_models(s) == []  # nothing asked for anything yet
    # The same registry, a new runner asked to preload add's newest version and ints:1.
    async with running_stack(kafka_bootstrap, tmp_path, prefix=prefix, runner_overrides={
            "preload": ("add", "ints:1")}) as s:
        assert await loaded_models(s) == ["add:2", "ints:1"]
        task = await s.create_task("acme", "add:2")
        key = await s.create_key("acme")
        body = (await s.submit(task, key, [{"tensorName": "x", "payloadType": "Json",
                                            "payload": json.dumps([[0.5] * 8])}])).json()
        assert body["state"] == "success" and body["data"] == {"y": [[1.5] * 8]}


async def test_a_preload_naming_an_unknown_model_stops_the_runner(
    kafka_bootstrap: str | None, tmp_path: Path
) -> None:
    bus_settings_ = bus_settings(kafka_bootstrap, tmp_path / "bus")
    bus = bus_for(bus_settings_, "preload-test")
    await bus.start()
    try:
        runner = Runner(RunnerSettings(bus=bus_settings_, preload=("nope:3",),
                                       cache_dir=tmp_path / "cache"), bus)
        with pytest.raises(SettingError, match="INFERQ_RUNNER_PRELOAD names model 'nope:3', "
                                               "which the registry does not hold"):
            await runner.start()
        # It never joined the group: nothing consumes, nothing beats.
        assert not runner.started.is_set()
    finally:
        await bus.stop()


def _model(name: str, version: str, at: int = 0) -> ModelRecord:
    return ModelRecord(name=name, version=version, sha256="0" * 64, uri="file:///m",
                       size=1, inputs=(), outputs=(), created_at_ms=at)


def test_names_resolve_to_versions_in_order_each_once() -> None:
    models = {m.id: m for m in (_model("a", "2"), _model("a", "10"), _model("a", "beta", 9),
                                _model("b", "1"), _model("c", "x", 1), _model("c", "y", 2))}
    ids = [m.id for m in resolve(["b", "a:2", "a", "*", "b:1"], models, max_models=8)]
    # "a" is version 10 (numbered versions by number, not as text); "*" adds c's newest.
    assert ids == ["b:1", "a:2", "a:10", "c:y"]
    with pytest.raises(SettingError, match="names 4 models, more than the 3 "
                                           "INFERQ_RUNNER_MAX_MODELS keeps loaded"):
        resolve(["a:2", "*"], models, max_models=3)
    with pytest.raises(SettingError, match="names model 'a:3', which the registry"):
        resolve(["a:3"], models, max_models=8)


def test_the_setting_is_a_comma_list_like_the_providers() -> None:
    s = RunnerSettings.from_env({
        "INFERQ_RUNNER_PRELOAD": " add, ints:1 ,, *",
        "INFERQ_PROVIDERS": "CUDAExecutionProvider, CPUExecutionProvider,"})
    assert s.preload == ("add", "ints:1", "*")
    assert s.providers == ("CUDAExecutionProvider", "CPUExecutionProvider")
    unset = RunnerSettings.from_env({})
    assert unset.preload == () and unset.providers == DEFAULT_PROVIDERS
