"""The Open Inference Protocol v2 end to end: tritonclient (unchanged, from PyPI) against
a running server, on the embedded bus and on Kafka.

tritonclient's HTTP client is synchronous (gevent): it runs on a thread of its own while
the server runs in the test's event loop.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tritonclient.http as httpclient
from onnx import TensorProto, helper, numpy_helper
from tritonclient.utils import InferenceServerException

from tests import onnx_models
from tests.harness import Stack, running_stack

# ---------------------------------------------------------------------------------------
# models the tests build


def _model(graph: onnx.GraphProto) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def add_const(c: float) -> bytes:
    """y = x + c, FP32 [-1, 4]."""
    return _model(helper.make_graph(
        [helper.make_node("Add", ["x", "c"], ["y"])], "add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        initializer=[numpy_helper.from_array(np.full((4,), c, np.float32), "c")]))


def bool_model() -> bytes:
    """not_a = Not(a), both_ab = And(a, b): BOOL [-1, 3]."""
    return _model(helper.make_graph(
        [helper.make_node("Not", ["a"], ["not_a"]), helper.make_node("And", ["a", "b"],
                                                                    ["both"])],
        "bools",
        [helper.make_tensor_value_info("a", TensorProto.BOOL, ["n", 3]),
         helper.make_tensor_value_info("b", TensorProto.BOOL, ["n", 3])],
        [helper.make_tensor_value_info("not_a", TensorProto.BOOL, ["n", 3]),
         helper.make_tensor_value_info("both", TensorProto.BOOL, ["n", 3])]))


def half_model() -> bytes:
    """y = x * x, FP16 [2, -1]."""
    return _model(helper.make_graph(
        [helper.make_node("Mul", ["x", "x"], ["y"])], "half",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [2, "n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [2, "n"])]))


def text_model() -> bytes:
    """upper = upper-cased text, BYTES [-1]."""
    return _model(helper.make_graph(
        [helper.make_node("StringNormalizer", ["text"], ["upper"],
                          case_change_action="UPPER", locale="C.UTF-8")],
        "text",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["n"])],
        [helper.make_tensor_value_info("upper", TensorProto.STRING, ["n"])]))


#: The remaining protocol datatypes, each through an Identity.
IDENTITY_TYPES = {
    "UINT8": (TensorProto.UINT8, np.uint8), "UINT16": (TensorProto.UINT16, np.uint16),
    "UINT32": (TensorProto.UINT32, np.uint32), "UINT64": (TensorProto.UINT64, np.uint64),
    "INT8": (TensorProto.INT8, np.int8), "INT16": (TensorProto.INT16, np.int16),
    "INT32": (TensorProto.INT32, np.int32), "FP64": (TensorProto.DOUBLE, np.float64),
}


def identity_model() -> bytes:
    names = [t.lower() for t in IDENTITY_TYPES]
    return _model(helper.make_graph(
        [helper.make_node("Identity", [f"in_{n}"], [f"out_{n}"]) for n in names], "ident",
        [helper.make_tensor_value_info(f"in_{n}", t[0], [-1]) for n, t in
         zip(names, IDENTITY_TYPES.values(), strict=True)],
        [helper.make_tensor_value_info(f"out_{n}", t[0], [-1]) for n, t in
         zip(names, IDENTITY_TYPES.values(), strict=True)]))


def ort_run(model: bytes, feeds: dict[str, Any]) -> dict[str, Any]:
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds), strict=True))


MODELS: dict[str, dict[str, bytes]] = {
    "add": {"1": add_const(1.0), "2": add_const(2.0)},
    "ints": {"1": onnx_models.int_model()},
    "bools": {"1": bool_model()},
    "half": {"1": half_model()},
    "text": {"3": text_model()},
    "ident": {"1": identity_model()},
}


def model_repository(root: Path) -> Path:
    for name, versions in MODELS.items():
        for version, data in versions.items():
            (root / name / version).mkdir(parents=True)
            (root / name / version / "model.onnx").write_bytes(data)
    (root / "add" / "config.pbtxt").write_text('name: "add"')  # ignored, as Triton's is
    (root / "add" / "notes").mkdir()  # not a version directory: ignored
    return root


# ---------------------------------------------------------------------------------------
# helpers


class Triton:
    """tritonclient.http on one thread of its own: gevent's hub belongs to that thread."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        self._url = base_url.removeprefix("http://")
        self._headers = headers
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="triton")
        self._client: httpclient.InferenceServerClient | None = None

    async def call(self, method: str, *args: Any, **kw: Any) -> Any:
        def run() -> Any:
            if self._client is None:
                self._client = httpclient.InferenceServerClient(self._url, network_timeout=60)
            return getattr(self._client, method)(*args, headers=self._headers, **kw)

        return await asyncio.get_running_loop().run_in_executor(self._pool, run)

    async def close(self) -> None:
        def run() -> None:
            if self._client is not None:
                self._client.close()

        await asyncio.get_running_loop().run_in_executor(self._pool, run)
        self._pool.shutdown()


async def eventually(check: Callable[[], Any], what: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"{what} within {timeout_s} s"
        await asyncio.sleep(0.05)


def v2_input(name: str, array: np.ndarray[Any, Any], datatype: str, binary: bool
             ) -> httpclient.InferInput:
    inp = httpclient.InferInput(name, list(array.shape), datatype)
    inp.set_data_from_numpy(array, binary_data=binary)
    return inp


@pytest.fixture
async def stack(kafka_bootstrap: str | None, tmp_path: Path) -> AsyncIterator[Stack]:
    repo = model_repository(tmp_path / "repo")
    async with running_stack(kafka_bootstrap, tmp_path,
                             ingest_overrides={"model_repository": repo,
                                               "max_body_bytes": 256 * 1024}) as s:
        yield s


@pytest.fixture
async def triton(stack: Stack) -> AsyncIterator[Triton]:
    client = Triton(stack.base_url, {"X-Api-Key": await stack.create_key("acme")})
    await eventually(lambda: client.call("is_server_ready"), "a runner is alive")
    yield client
    await client.close()


# ---------------------------------------------------------------------------------------
# tritonclient against the server


async def test_health_and_metadata(triton: Triton) -> None:
    assert await triton.call("is_server_live") is True
    assert await triton.call("is_server_ready") is True
    meta = await triton.call("get_server_metadata")
    assert meta["name"] == "inferq" and meta["extensions"] == ["binary_tensor_data"]
    assert isinstance(meta["version"], str) and meta["version"]
    assert await triton.call("is_model_ready", "add") is True
    assert await triton.call("is_model_ready", "add", "1") is True
    assert await triton.call("is_model_ready", "add", "7") is False
    assert await triton.call("is_model_ready", "nope") is False
    assert await triton.call("get_model_metadata", "add") == {
        "name": "add", "versions": ["1", "2"], "platform": "onnxruntime_onnx",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 4]}],
    }
    meta = await triton.call("get_model_metadata", "half", "1")
    assert meta["inputs"] == [{"name": "x", "datatype": "FP16", "shape": [2, -1]}]
    meta = await triton.call("get_model_metadata", "text")
    assert meta["versions"] == ["3"]
    assert meta["outputs"] == [{"name": "upper", "datatype": "BYTES", "shape": [-1]}]
    with pytest.raises(InferenceServerException) as err:
        await triton.call("get_model_metadata", "add", "9")
    assert err.value.status() == "404" and err.value.message() == "model 'add' has no version '9'"


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
async def test_infer_matches_onnxruntime(triton: Triton, binary: bool) -> None:
    rng = np.random.default_rng(7)
    out = lambda name: httpclient.InferRequestedOutput(name, binary_data=binary)  # noqa: E731

    # FP32, default version (the newest: 2) and version 1, request id echoed.
    x = rng.standard_normal((3, 4)).astype(np.float32)
    r = await triton.call("infer", "add", [v2_input("x", x, "FP32", binary)],
                          outputs=[out("y")], request_id="req-1")
    np.testing.assert_array_equal(r.as_numpy("y"), ort_run(MODELS["add"]["2"], {"x": x})["y"])
    assert r.get_response()["id"] == "req-1"
    assert r.get_response()["model_name"] == "add"
    assert r.get_response()["model_version"] == "2"
    r = await triton.call("infer", "add", [v2_input("x", x, "FP32", binary)],
                          model_version="1", outputs=[out("y")])
    np.testing.assert_array_equal(r.as_numpy("y"), x + 1)
    assert r.get_response()["model_version"] == "1"

    # INT64 with two outputs; `outputs` selects and orders them.
    a = rng.integers(-1000, 1000, (2, 3), dtype=np.int64)
    b = rng.integers(-1000, 1000, (2, 3), dtype=np.int64)
    want = ort_run(MODELS["ints"]["1"], {"a": a, "b": b})
    inputs = [v2_input("a", a, "INT64", binary), v2_input("b", b, "INT64", binary)]
    r = await triton.call("infer", "ints", inputs, outputs=[out("prod"), out("sum")])
    assert [o["name"] for o in r.get_response()["outputs"]] == ["prod", "sum"]
    np.testing.assert_array_equal(r.as_numpy("prod"), want["prod"])
    np.testing.assert_array_equal(r.as_numpy("sum"), want["sum"])
    assert r.as_numpy("sum").dtype == np.int64
    r = await triton.call("infer", "ints", inputs, outputs=[out("sum")])
    assert [o["name"] for o in r.get_response()["outputs"]] == ["sum"]

    # BOOL
    fa = rng.integers(0, 2, (4, 3)).astype(bool)
    fb = rng.integers(0, 2, (4, 3)).astype(bool)
    want = ort_run(MODELS["bools"]["1"], {"a": fa, "b": fb})
    r = await triton.call("infer", "bools", [v2_input("a", fa, "BOOL", binary),
                                             v2_input("b", fb, "BOOL", binary)],
                          outputs=[out("not_a"), out("both")])
    for name in ("not_a", "both"):
        assert r.as_numpy(name).dtype == np.bool_
        np.testing.assert_array_equal(r.as_numpy(name), want[name])

    # FP16
    h = rng.standard_normal((2, 5)).astype(np.float16)
    r = await triton.call("infer", "half", [v2_input("x", h, "FP16", binary)],
                          outputs=[out("y")])
    assert r.as_numpy("y").dtype == np.float16
    np.testing.assert_array_equal(r.as_numpy("y"), ort_run(MODELS["half"]["1"], {"x": h})["y"])

    # BYTES (binary outputs come back as bytes, JSON ones as str)
    words = np.array([b"hello", "grüße".encode(), b"", b"v2"], dtype=np.object_)
    r = await triton.call("infer", "text", [v2_input("text", words, "BYTES", binary)],
                          outputs=[out("upper")])
    want_text = ort_run(MODELS["text"]["3"], {"text": np.array(
        [w.decode() for w in words], dtype=object)})["upper"]
    got = [v.decode() if isinstance(v, bytes) else v for v in r.as_numpy("upper").tolist()]
    assert got == want_text.tolist() and got[0] == "HELLO" and got[2] == ""
    assert r.get_response()["model_version"] == "3"

    # The other integer widths and FP64, extremes included.
    arrays = {}
    for dt, (_, np_type) in IDENTITY_TYPES.items():
        if np.issubdtype(np_type, np.integer):
            info = np.iinfo(np_type)
            arrays[dt] = np.array([info.min, 0, 1, info.max], dtype=np_type)
        else:
            arrays[dt] = np.array([-1.5e300, 0.0, 1 / 3, 2.5e-300], dtype=np_type)
    r = await triton.call(
        "infer", "ident",
        [v2_input(f"in_{dt.lower()}", arr, dt, binary) for dt, arr in arrays.items()],
        outputs=[out(f"out_{dt.lower()}") for dt in arrays])
    for dt, arr in arrays.items():
        got_arr = r.as_numpy(f"out_{dt.lower()}")
        assert got_arr.dtype == arr.dtype, dt
        np.testing.assert_array_equal(got_arr, arr)


async def test_binary_in_json_out_and_all_outputs_binary_by_default(triton: Triton) -> None:
    a = np.arange(6, dtype=np.int64).reshape(2, 3)
    b = np.full((2, 3), 3, np.int64)
    want = ort_run(MODELS["ints"]["1"], {"a": a, "b": b})
    # No outputs named: tritonclient asks for every output, as binary.
    r = await triton.call("infer", "ints", [v2_input("a", a, "INT64", True),
                                            v2_input("b", b, "INT64", False)])
    outputs = r.get_response()["outputs"]
    assert [o["name"] for o in outputs] == ["sum", "prod"]
    assert all(o["parameters"]["binary_data_size"] == 48 and "data" not in o for o in outputs)
    np.testing.assert_array_equal(r.as_numpy("prod"), want["prod"])
    # Compressed both ways.
    r = await triton.call("infer", "ints", [v2_input("a", a, "INT64", True),
                                            v2_input("b", b, "INT64", True)],
                          outputs=[httpclient.InferRequestedOutput("sum", binary_data=False)],
                          request_compression_algorithm="gzip",
                          response_compression_algorithm="deflate")
    assert r.get_response()["outputs"][0]["data"] == want["sum"].reshape(-1).tolist()


# ---------------------------------------------------------------------------------------
# error paths, over raw HTTP


async def test_error_paths(stack: Stack, triton: Triton) -> None:
    key = await stack.create_key("acme")
    other_key = await stack.create_key("other")
    # A model of another account's task: visible to that account only.
    private = await stack.upload_model("private", add_const(5.0))
    await stack.create_task("other", private)
    c, base = stack.client, stack.base_url

    async def call(method: str, path: str, *, k: str | None = key, **kw: Any) -> Any:
        headers = kw.pop("headers", {})
        if k is not None:
            headers["X-Api-Key"] = k
        return await c.request(method, base + path, headers=headers, **kw)

    async def expect(status: int, error: str, method: str, path: str, **kw: Any) -> None:
        r = await call(method, path, **kw)
        assert (r.status_code, r.json()) == (status, {"error": error}), (path, r.text)
        assert r.headers["content-type"] == "application/json"

    x = {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}

    def body(*inputs: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"inputs": list(inputs), **extra}

    # Auth and visibility.
    await expect(401, "missing API key: send it in the X-Api-Key header",
                 "GET", "/v2/models/add", k=None)
    await expect(401, "invalid API key", "GET", "/v2/models/add", k="pk-00000000-" + "0" * 32)
    await expect(401, "missing API key: send it in the X-Api-Key header",
                 "POST", "/v2/models/add/infer", k=None, json=body(x))
    await expect(404, "model 'private' not found", "GET", "/v2/models/private")
    await expect(404, "model 'private' not found", "GET", "/v2/models/private/ready")
    await expect(404, "model 'private' not found", "POST", "/v2/models/private/infer",
                 json=body(x))
    r = await call("POST", "/v2/models/private/infer", k=other_key, json=body(x))
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [6, 7, 8, 9]
    r = await call("GET", "/v2/models/add", headers={"Authorization": f"Bearer {key}"}, k=None)
    assert r.status_code == 200
    # Unknown models, versions and routes.
    await expect(404, "model 'nope' not found", "POST", "/v2/models/nope/infer", json=body(x))
    await expect(404, "model 'add' has no version '3'", "POST",
                 "/v2/models/add/versions/3/infer", json=body(x))
    await expect(404, "model 'add' has no version '3'", "GET", "/v2/models/add/versions/3")
    await expect(404, "model 'add' has no version '3'", "GET",
                 "/v2/models/add/versions/3/ready")
    await expect(404, "no route /v2/modelz", "GET", "/v2/modelz")
    await expect(405, "method GET is not allowed on /v2/models/add/infer", "GET",
                 "/v2/models/add/infer")
    await expect(405, "method POST is not allowed on /v2/health/live", "POST",
                 "/v2/health/live")

    # Bodies.
    infer = "/v2/models/add/infer"
    bad: list[tuple[Any, str]] = [
        (body({**x, "shape": [4]}),
         "input 'x': shape [4] does not match the model's [-1, 4] (-1: any size)"),
        (body({**x, "shape": [2, 4]}), "input 'x': 4 values for shape [2, 4] (needs 8)"),
        (body({**x, "shape": [1, -4]}), "input 'x': shape [1, -4] has a negative dimension"),
        (body({**x, "datatype": "FP64"}),
         "input 'x': datatype FP64 does not match the model's FP32"),
        (body({**x, "datatype": "BF16"}),
         "input 'x': datatype 'BF16' is not supported (one of BOOL, UINT8, UINT16, UINT32, "
         "UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES)"),
        (body({**x, "name": "z"}), "unknown input 'z': model add has inputs 'x'"),
        (body(x, x), "input 'x' is given more than once"),
        (body(), "missing input 'x'"),
        (body({**x, "data": None}), "input 'x' has no data (give data, or binary_data_size "
                                    "with binary data after the JSON)"),
        (body({k: v for k, v in x.items() if k != "data"}),
         "input 'x' has no data (give data, or binary_data_size with binary data after the "
         "JSON)"),
        (body({**x, "data": {"a": 1}}), "input 'x': data must be a JSON array"),
        (body({**x, "data": [[1, 2], [3]]}), "input 'x': nested data arrays are ragged"),
        (body({**x, "data": ["a", "b", "c", "d"]}), "input 'x': FP32 data must be numbers"),
        (body({**x, "parameters": {"shared_memory_region": "r"}}),
         "input 'x': shared memory is not supported (shared_memory_region)"),
        (body(x, outputs=[{"name": "nope"}]), "unknown output 'nope': model add has outputs 'y'"),
        (body(x, outputs=[{"name": "y"}, {"name": "y"}]), "output 'y' is requested more than "
                                                          "once"),
        (body(x, outputs=[{"name": "y", "parameters": {"classification": 2}}]),
         "output 'y': the classification extension is not supported (classification)"),
        (body(x, outputs=[{"name": "y", "parameters": {"binary_data": "yes"}}]),
         "output 'y': parameter binary_data must be true or false"),
        (body(x, parameters={"binary_data_output": 1}),
         "request: parameter binary_data_output must be true or false"),
        ({"inputs": [x], "extra": 1}, "invalid inference request: Object contains unknown "
                                      "field `extra`"),
        ({"inputs": [{**x, "shape": "1,4"}]},
         "invalid inference request: Expected `array`, got `str` - at `$.inputs[0].shape`"),
    ]
    for payload, error in bad:
        await expect(400, error, "POST", infer, json=payload)
    await expect(400, "inference request is not valid JSON: Input data was truncated",
                 "POST", infer, content=b'{"inputs": [')

    # The binary extension.
    raw = np.arange(4, dtype=np.float32).tobytes()

    def binary_call(params: dict[str, Any], tail: bytes, **over: Any) -> dict[str, Any]:
        head = json.dumps(body({**{k: v for k, v in x.items() if k != "data"},
                                "parameters": params, **over})).encode()
        return {"content": head + tail,
                "headers": {"Inference-Header-Content-Length": str(len(head))}}

    r = await call("POST", infer, **binary_call({"binary_data_size": 16}, raw))
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [2, 3, 4, 5]
    await expect(400, "input 'x': binary_data_size 32 runs past the 16 bytes of binary data "
                      "in the body", "POST", infer, **binary_call({"binary_data_size": 32}, raw))
    await expect(400, "input 'x': binary_data_size 12 does not match FP32 of shape [1, 4] "
                      "(16 bytes)", "POST", infer,
                 **binary_call({"binary_data_size": 12}, raw[:12]))
    await expect(400, "the body carries 20 bytes of binary data but the inputs' "
                      "binary_data_size add up to 16", "POST", infer,
                 **binary_call({"binary_data_size": 16}, raw + b"xxxx"))
    await expect(400, "input 'x': binary_data_size must be a non-negative integer", "POST",
                 infer, **binary_call({"binary_data_size": -1}, raw))
    await expect(400, "input 'x' has both data and binary_data_size", "POST", infer,
                 **binary_call({"binary_data_size": 16}, raw, data=[1, 2, 3, 4]))
    await expect(400, "Inference-Header-Content-Length 'abc' is not a number", "POST", infer,
                 content=b"{}", headers={"Inference-Header-Content-Length": "abc"})
    await expect(400, "Inference-Header-Content-Length 99 does not fit the body of 2 bytes",
                 "POST", infer, content=b"{}",
                 headers={"Inference-Header-Content-Length": "99"})
    words = {"name": "text", "shape": [2], "datatype": "BYTES"}
    for params, tail, error in [
        ({"binary_data_size": 6}, b"\x02\x00\x00\x00hi",
         "input 'text': 1 BYTES elements for shape needing 2"),
        ({"binary_data_size": 6}, b"\x09\x00\x00\x00hi",
         "input 'text': BYTES element of 9 bytes runs past its data"),
        ({"binary_data_size": 2}, b"\x09\x00",
         "input 'text': BYTES data ends inside an element length"),
        ({"binary_data_size": 10}, b"\x01\x00\x00\x00\xff\x01\x00\x00\x00a",
         "input 'text': BYTES element 0 is not UTF-8 (inferq passes BYTES to ONNX string "
         "tensors as text)"),
    ]:
        head = json.dumps(body({**words, "parameters": params})).encode()
        await expect(400, error, "POST", "/v2/models/text/infer", content=head + tail,
                     headers={"Inference-Header-Content-Length": str(len(head))})
    flags = {"name": "a", "shape": [1, 3], "datatype": "BOOL", "parameters":
             {"binary_data_size": 3}}
    head = json.dumps(body(flags, {**flags, "name": "b"})).encode()
    await expect(400, "input 'a': BOOL bytes must be 0 or 1", "POST", "/v2/models/bools/infer",
                 content=head + b"\x00\x01\x02\x00\x00\x00",
                 headers={"Inference-Header-Content-Length": str(len(head))})

    # Compression and size bounds.
    r = await call("POST", infer, content=gzip.compress(json.dumps(body(x)).encode()),
                   headers={"Content-Encoding": "gzip"})
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [3, 4, 5, 6]
    # Responses: JSON from 1 KiB up is compressed when the client accepts it; binary
    # tensor data is not (raw floats barely shrink).
    rows = {**x, "shape": [300, 4], "data": [0.25] * 1200}
    r = await call("POST", infer, json=body(rows), headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
    assert r.json()["outputs"][0]["data"] == [2.25] * 1200
    r = await call("POST", infer, json=body(rows, parameters={"binary_data_output": True}),
                   headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and "content-encoding" not in r.headers
    head = int(r.headers["inference-header-content-length"])
    assert np.frombuffer(r.content[head:], np.float32).tolist() == [2.25] * 1200
    await expect(400, "Content-Encoding 'br' is not supported (gzip, deflate)", "POST", infer,
                 content=b"{}", headers={"Content-Encoding": "br"})
    await expect(400, "the gzip body is truncated", "POST", infer,
                 content=gzip.compress(b"{}" * 100)[:20], headers={"Content-Encoding": "gzip"})
    await expect(413, "the decompressed body exceeds the limit of 262144 bytes", "POST", infer,
                 content=gzip.compress(b" " * 300_000), headers={"Content-Encoding": "gzip"})
    await expect(413, "request body of 300000 bytes exceeds the limit of 262144", "POST", infer,
                 content=b" " * 300_000)


# ---------------------------------------------------------------------------------------
# auth off, the model repository, readiness without runners


async def test_auth_off_and_model_repository(
    kafka_bootstrap: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = model_repository(tmp_path / "repo")
    async with running_stack(kafka_bootstrap, tmp_path,
                             ingest_overrides={"model_repository": repo,
                                               "v2_auth": False}) as stack:
        private = await stack.upload_model("private", add_const(5.0))
        await stack.create_task("other", private)
        triton = Triton(stack.base_url)  # no key at all
        try:
            await eventually(lambda: triton.call("is_server_ready"), "a runner is alive")
            # Every registered model is visible, uploaded ones included.
            assert (await triton.call("get_model_metadata", "private"))["versions"] == ["1"]
            x = np.ones((1, 4), np.float32)
            for model, want in (("private", 6.0), ("add", 3.0)):
                r = await triton.call("infer", model, [v2_input("x", x, "FP32", True)])
                np.testing.assert_array_equal(r.as_numpy("y"), x * want)
        finally:
            await triton.close()

        # One task per repository model, on its newest version, owned by the repository
        # account, listed by `inferq tasks list`.
        from inferq.cli import main
        from tests.harness import ADMIN_TOKEN

        capsys.readouterr()
        await asyncio.to_thread(main, ["tasks", "list", "--url", stack.base_url,
                                       "--admin-token", ADMIN_TOKEN,
                                       "--account", "model-repository"])
        listed = json.loads(capsys.readouterr().out)
        assert sorted((t["name"], t["model"], t["account"]) for t in listed) == [
            ("add", "add:2", "model-repository"), ("bools", "bools:1", "model-repository"),
            ("half", "half:1", "model-repository"), ("ident", "ident:1", "model-repository"),
            ("ints", "ints:1", "model-repository"), ("text", "text:3", "model-repository")]
        add_task = next(t for t in listed if t["name"] == "add")

        # That task serves the submit API for the repository account's keys.
        key = await stack.create_key("model-repository")
        r = await stack.submit(add_task["id"], key, [
            {"tensorName": "x", "payloadType": "Json", "payload": "[[0, 0, 0, 0]]",
             "fileUrl": None}])
        assert r.json()["data"] == {"y": [[2.0, 2.0, 2.0, 2.0]]}, r.text

        # Registering again (a restart, a second replica) changes nothing; a new version
        # (numerically newest: 10 > 2) moves the task and the default.
        from ingest.model_repository import register_repository

        ctx = stack.app.state.ctx
        registry_records = await stack.count_records(stack.topics.registry)
        await register_repository(ctx.registry, ctx.models, repo, "model-repository")
        assert await stack.count_records(stack.topics.registry) == registry_records
        (repo / "add" / "10").mkdir()
        (repo / "add" / "10" / "model.onnx").write_bytes(add_const(10.0))
        await register_repository(ctx.registry, ctx.models, repo, "model-repository")
        assert await stack.count_records(stack.topics.registry) == registry_records + 2
        r = await stack.admin("GET", "/admin/tasks?account=model-repository")
        assert {t["model"] for t in r.json() if t["name"] == "add"} == {"add:10"}
        r = await stack.client.get(f"{stack.base_url}/v2/models/add")
        assert r.json()["versions"] == ["1", "2", "10"]
        r = await stack.client.post(f"{stack.base_url}/v2/models/add/infer", json={
            "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                        "data": [0, 0, 0, 0]}]})
        assert r.json()["model_version"] == "10"
        assert r.json()["outputs"][0]["data"] == [10.0, 10.0, 10.0, 10.0]


async def test_ready_only_with_a_live_runner(kafka_bootstrap: str | None, tmp_path: Path
                                            ) -> None:
    """Ingest alone: not ready until a runner's heartbeat arrives; its tombstone, or
    silence for three heartbeat intervals, makes it not ready again."""
    from inferq.serve import bound_port, server
    from ingest.app import create_app
    from ingest.settings import IngestSettings
    from schemas.messages import Heartbeat, encode
    from tests.harness import bus_settings

    bus = bus_settings(kafka_bootstrap, tmp_path / "bus")
    settings = IngestSettings(bus=bus, model_dir=tmp_path / "models", v2_auth=False,
                              model_repository=model_repository(tmp_path / "repo"),
                              runner_heartbeat_s=0.5)
    app = create_app(settings)
    srv = server(app, "127.0.0.1", 0)
    serving = asyncio.create_task(srv.serve())
    try:
        await eventually(lambda: asyncio.sleep(0, srv.started or serving.done()), "started")
        assert srv.started
        base = f"http://127.0.0.1:{bound_port(srv)}"
        ctx = app.state.ctx
        runners = ctx.topics.runners
        async with httpx.AsyncClient(timeout=30) as client:
            r = await client.get(f"{base}/v2/health/live")
            assert (r.status_code, r.content) == (200, b"")
            not_ready_body = {"error": "not ready: no runner is alive"}
            for path in ("/v2/health/ready", "/v2/models/add/ready"):
                r = await client.get(base + path)
                assert (r.status_code, r.json()) == (400, not_ready_body)

            async def beat(state: Literal["running", "draining"] = "running", age_ms: int = 0
                           ) -> None:
                hb = Heartbeat(runner_id="r1", host="h", device="cpu",
                               providers=("CPUExecutionProvider",),
                               at_ms=int(time.time() * 1000) - age_ms, state=state)
                await ctx.bus.publish(runners, b"r1", encode(hb))
                # Wait until ingest's view holds exactly this heartbeat.
                await eventually(lambda: asyncio.sleep(0, ctx.runners.heartbeats.get("r1") == hb),
                                 "heartbeat applied")

            async def ready() -> bool:
                return (await client.get(f"{base}/v2/health/ready")).status_code == 200

            async def not_ready() -> bool:
                return not await ready()

            await beat()
            assert await ready()
            r = await client.get(f"{base}/v2/models/add/ready")
            assert (r.status_code, r.content) == (200, b"")
            await ctx.bus.publish(runners, b"r1", None)
            await eventually(not_ready, "not ready after the tombstone")
            await beat(state="draining")
            assert not await ready()
            await beat()
            assert await ready()
            await eventually(not_ready, "not ready once heartbeats stop", timeout_s=5)
            await beat(age_ms=2000)  # already older than three intervals
            assert not await ready()
    finally:
        srv.should_exit = True
        await asyncio.wait_for(serving, 60)
