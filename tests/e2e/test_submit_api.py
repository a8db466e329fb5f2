"""The submit API end to end over real HTTP, on the embedded bus and on Kafka."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from aiohttp import web

from tests import onnx_models
from tests.harness import Stack, running_stack
from tests.local_http import serving


def ort_run(model: bytes, feeds: dict[str, Any]) -> dict[str, Any]:
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds), strict=True))


@pytest.fixture
async def stack(kafka_bootstrap: str | None, tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(kafka_bootstrap, tmp_path) as s:
        yield s


def jb(name: str, value: Any) -> dict[str, Any]:
    return {"tensorName": name, "payloadType": "Json", "payload": json.dumps(value),
            "fileUrl": None}


async def test_json_bindings_match_onnxruntime(stack: Stack) -> None:
    model = onnx_models.int_model()
    task = await stack.create_task("acme", await stack.upload_model("ints", model))
    key = await stack.create_key("acme")
    a = [[1, 2, 3], [4, 5, 6]]
    b = [[10, 20, 30], [-1, -2, -3]]
    r = await stack.submit(task, key, [jb("a", a), jb("b", b)])
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"id", "state", "data", "error"}
    assert body["state"] == "success" and body["error"] is None
    want = ort_run(model, {"a": np.array(a, np.int64), "b": np.array(b, np.int64)})
    assert body["data"] == {k: v.tolist() for k, v in want.items()}
    # The result stays retrievable by id, with the same body.
    g = await stack.client.get(f"{stack.base_url}/api/inference/subtasks/{body['id']}",
                               headers={"X-Api-Key": key})
    assert g.status_code == 200 and g.json() == body


async def test_float_model_and_bearer_auth(stack: Stack) -> None:
    model = onnx_models.add_model()
    task = await stack.create_task("acme", await stack.upload_model("add", model))
    key = await stack.create_key("acme")
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    r = await stack.client.post(f"{stack.base_url}/api/inference/tasks/{task}",
                                json={"bindings": [jb("x", x.tolist())]},
                                headers={"Authorization": f"Bearer {key}"})
    assert r.json()["state"] == "success", r.text
    got = np.array(r.json()["data"]["y"], np.float32)
    np.testing.assert_array_equal(got, ort_run(model, {"x": x})["y"])


async def test_text_binding_feeds_string_tensor(stack: Stack) -> None:
    model = onnx_models.text_model()
    task = await stack.create_task("acme", await stack.upload_model("text", model))
    key = await stack.create_key("acme")
    r = await stack.submit(task, key, [{"tensorName": "text", "payloadType": "Text",
                                        "payload": "hello inferq", "fileUrl": None}])
    assert r.json() == {"id": r.json()["id"], "state": "success",
                        "data": {"upper": ["HELLO INFERQ"]}, "error": None}


@pytest.fixture
async def npy_server() -> AsyncIterator[tuple[str, dict[str, bytes]]]:
    files: dict[str, bytes] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name == "moved.npy":
            raise web.HTTPFound("/files/image.npy")
        if name not in files:
            raise web.HTTPNotFound()
        return web.Response(body=files[name], content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/files/{name}", handle)
    async with serving(app) as base:
        yield f"{base}/files", files


def npy(array: np.ndarray[Any, Any]) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def object_npy() -> bytes:
    """A .npy whose header announces pickled Python objects."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    return buf.getvalue() + b"\x80\x04N."


async def test_binary_binding_fetches_npy(stack: Stack,
                                          npy_server: tuple[str, dict[str, bytes]]) -> None:
    base, files = npy_server
    model = onnx_models.image_model()
    task = await stack.create_task("acme", await stack.upload_model("img", model))
    key = await stack.create_key("acme")
    image = np.random.default_rng(2).standard_normal((1, 3, 8, 8)).astype(np.float32)
    files["image.npy"] = npy(image)
    files["wrong.npy"] = npy(np.zeros((1, 3, 4, 4), np.float32))
    files["pickle.npy"] = object_npy()
    files["huge.npy"] = npy(np.full((1, 3, 8, 8), 1e300))  # float64, past float32

    def binding(name: str) -> dict[str, Any]:
        return {"tensorName": "image", "payloadType": "Binary", "payload": None,
                "fileUrl": f"{base}/{name}"}

    r = await stack.submit(task, key, [binding("image.npy")])
    assert r.json()["state"] == "success", r.text
    np.testing.assert_allclose(np.array(r.json()["data"]["mean"], np.float32),
                               ort_run(model, {"image": image})["mean"], rtol=1e-6)

    cases = {
        "wrong.npy": "does not match the model",
        "missing.npy": "HTTP 404",
        "moved.npy": "redirects are not followed",
        "pickle.npy": "Python objects are refused",
        "huge.npy": "do not fit float32",
    }
    for name, message in cases.items():
        r = await stack.submit(task, key, [binding(name)])
        body = r.json()
        assert r.status_code == 200 and body["state"] == "failed", (name, body)
        assert message in body["error"], (name, body)
        assert body["data"] is None


async def test_model_errors_become_failed_results(stack: Stack) -> None:
    model = await stack.upload_model("g", onnx_models.gather_model())
    task = await stack.create_task("acme", model)
    key = await stack.create_key("acme")
    ok = (await stack.submit(task, key, [jb("idx", [3, 0])])).json()
    assert ok["state"] == "success" and ok["data"] == {"rows": [[6.0, 7.0], [0.0, 1.0]]}
    bad = (await stack.submit(task, key, [jb("idx", [9])])).json()
    assert bad["state"] == "failed" and bad["data"] is None
    assert bad["error"].startswith("model error:") and "out of" in bad["error"]
    # The runner is unharmed: the next request succeeds.
    again = (await stack.submit(task, key, [jb("idx", [1])])).json()
    assert again["data"] == {"rows": [[2.0, 3.0]]}


async def test_traceparent_is_carried_or_replaced(stack: Stack) -> None:
    from obs.tracing import parse_traceparent

    task = await stack.create_task("acme", await stack.upload_model("add", onnx_models.add_model()))
    key = await stack.create_key("acme")
    good = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    for sent in (good, "garbage"):
        r = await stack.client.post(f"{stack.base_url}/api/inference/tasks/{task}",
                                    json={"bindings": [jb("x", [[1, 2, 3, 4]])]},
                                    headers={"X-Api-Key": key, "traceparent": sent})
        assert r.json()["state"] == "success"
    tail = stack.app.state.ctx.bus.tail([stack.topics.requests], from_beginning=True)
    await tail.start()
    headers = []
    for _ in range(100):
        headers += [rec.header("traceparent") for rec in await tail.fetch(100, 0.05)]
        if len(headers) == 2:
            break
    await tail.stop()
    # Two requests may land on two partitions: their order on the topic is not fixed.
    assert len(headers) == 2 and good.encode() in headers
    other = next(h for h in headers if h != good.encode())
    assert other != b"garbage" and parse_traceparent(other) is not None
