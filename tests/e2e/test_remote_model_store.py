"""Runners on other hosts: with ``INFERQ_MODEL_BASE_URL`` a request names its model by an
http(s) URI (the store served by a plain file server, here on 127.0.0.1), and the runner
fetches it once into its own cache, checks it, and runs it; on both buses, through real
HTTP. A store that does not answer fails the request at once, naming what was fetched."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from tests import onnx_models
from tests.harness import Stack, running_stack
from tests.local_http import serving

BINDING = [{"tensorName": "x", "payloadType": "Json", "payload": json.dumps([[1, 2, 3, 4]])}]


@pytest.fixture
async def store_server(tmp_path: Path) -> AsyncIterator[tuple[str, list[str]]]:
    """The stack's model folder served read-only over HTTP; the paths asked for."""
    models = tmp_path / "models"
    models.mkdir()
    asked: list[str] = []

    @web.middleware
    async def count(request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        asked.append(request.path)
        return await handler(request)

    app = web.Application(middlewares=[count])
    app.router.add_static("/store", models)
    async with serving(app) as base:
        yield f"{base}/store", asked


async def add_task(s: Stack) -> tuple[str, str, str, str]:
    """The add model uploaded, a task on it and a key: model id, sha256, task, key."""
    model_id = await s.upload_model("add", onnx_models.add_model())
    sha = s.app.state.ctx.registry.models[model_id].sha256
    return model_id, sha, await s.create_task("acme", model_id), await s.create_key("acme")


async def test_a_runner_fetches_the_model_from_the_served_store_once(
    kafka_bootstrap: str | None, tmp_path: Path, store_server: tuple[str, list[str]]
) -> None:
    base, asked = store_server
    async with running_stack(kafka_bootstrap, tmp_path,
                             ingest_overrides={"model_base_url": base + "/"}) as s:
        _, sha, task, key = await add_task(s)
        for _ in range(2):
            r = await s.submit(task, key, BINDING)
            body = r.json()
            assert body["state"] == "success", body
            assert body["data"] == {"y": [[2.0, 3.0, 4.0, 5.0]]}
        assert asked == [f"/store/{sha}.onnx"]
        cached = tmp_path / "cache" / f"{sha}.onnx"
        assert cached.read_bytes() == onnx_models.add_model()


async def test_a_store_that_does_not_have_the_model_fails_the_request(
    kafka_bootstrap: str | None, tmp_path: Path, store_server: tuple[str, list[str]]
) -> None:
    base, asked = store_server
    async with running_stack(kafka_bootstrap, tmp_path,
                             ingest_overrides={"model_base_url": base + "/elsewhere"}) as s:
        model_id, sha, task, key = await add_task(s)
        body = (await s.submit(task, key, BINDING)).json()
        uri = f"{base}/elsewhere/{sha}.onnx"
        assert body["state"] == "failed"
        assert body["error"] == f"fetching model {model_id} from {uri}: HTTP 404"
        assert asked == [f"/store/elsewhere/{sha}.onnx"]
        assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


async def test_a_runner_preloads_from_the_served_store_before_any_request(
    kafka_bootstrap: str | None, tmp_path: Path, store_server: tuple[str, list[str]]
) -> None:
    base, asked = store_server
    prefix = f"t{uuid.uuid4().hex[:10]}."
    async with running_stack(kafka_bootstrap, tmp_path, prefix=prefix) as s:
        _, sha, task, key = await add_task(s)
    assert asked == []
    async with running_stack(kafka_bootstrap, tmp_path, prefix=prefix,
                             ingest_overrides={"model_base_url": base},
                             runner_overrides={"model_base_url": base,
                                               "preload": ("add",)}) as s:
        assert asked == [f"/store/{sha}.onnx"]  # fetched as the runner started
        body = (await s.submit(task, key, BINDING)).json()
        assert body["state"] == "success", body
        assert asked == [f"/store/{sha}.onnx"]
