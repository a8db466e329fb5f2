"""The v2 codec: JSON and binary inputs to wire tensors, outputs back, every datatype."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from ingest.errors import BadRequest
from ingest.model_repository import scan
from ingest.responses import json_response
from ingest.v2_codec import (
    decode_request,
    encode_response,
    inputs_to_tensors,
    pack_bytes,
    split_body,
    unpack_bytes,
    wanted_outputs,
)
from schemas.messages import Succeeded
from schemas.registry import ModelRecord, TensorSpec, version_key
from schemas.submit_api import submit_response
from schemas.tensors import decode_tensor, encode_array
from schemas.v2_api import DTYPE_TO_V2, V2_TO_DTYPE

SAMPLES: dict[str, list[Any]] = {
    "BOOL": [True, False, True, True],
    "UINT8": [0, 1, 254, 255],
    "UINT16": [0, 1, 2, 65535],
    "UINT32": [0, 1, 2, 2**32 - 1],
    "UINT64": [0, 1, 2, 2**64 - 1],
    "INT8": [-128, -1, 0, 127],
    "INT16": [-(2**15), -1, 0, 2**15 - 1],
    "INT32": [-(2**31), -1, 0, 2**31 - 1],
    "INT64": [-(2**63), -1, 0, 2**63 - 1],
    "FP16": [-65504.0, -0.5, 0.0, 65504.0],
    "FP32": [-3.5, 0.0, 1.25, 3.0e38],
    "FP64": [-1.5e300, 0.0, 1 / 3, 2.5e-300],
    "BYTES": ["a", "", "grüße", "z" * 300],
}


def model(dtype: str, shape: tuple[int, ...] = (-1, 2)) -> ModelRecord:
    return ModelRecord(name="m", version="1", sha256="0" * 64, uri="file:///m.onnx", size=1,
                       inputs=(TensorSpec(name="x", dtype=dtype, shape=shape),),
                       outputs=(TensorSpec(name="y", dtype=dtype, shape=shape),
                                TensorSpec(name="z", dtype=dtype, shape=shape)),
                       created_at_ms=0)


def request(inputs: list[dict[str, Any]], **extra: Any) -> Any:
    return decode_request(json.dumps({"inputs": inputs, **extra}).encode())


def expected(datatype: str) -> np.ndarray[Any, Any]:
    dtype = V2_TO_DTYPE[datatype]
    return np.array(SAMPLES[datatype], dtype=object if dtype == "string" else dtype)


@pytest.mark.parametrize("datatype", list(SAMPLES))
@pytest.mark.parametrize("nested", [False, True])
def test_json_data_flat_or_nested(datatype: str, nested: bool) -> None:
    values = SAMPLES[datatype]
    data = [values[:2], values[2:]] if nested else values
    req = request([{"name": "x", "shape": [2, 2], "datatype": datatype, "data": data}])
    (tensor,) = inputs_to_tensors(req, b"", model(V2_TO_DTYPE[datatype]))
    got = decode_tensor(tensor)
    assert got.shape == (2, 2)
    assert got.reshape(-1).tolist() == expected(datatype).tolist()


def raw_of(datatype: str) -> bytes:
    array = expected(datatype)
    if datatype == "BYTES":
        return pack_bytes(array.tolist())
    return array.astype(array.dtype.newbyteorder("<")).tobytes()


@pytest.mark.parametrize("datatype", list(SAMPLES))
def test_binary_data_every_datatype(datatype: str) -> None:
    raw = raw_of(datatype)
    req = request([{"name": "x", "shape": [2, 2], "datatype": datatype,
                    "parameters": {"binary_data_size": len(raw)}}])
    (tensor,) = inputs_to_tensors(req, raw, model(V2_TO_DTYPE[datatype]))
    assert decode_tensor(tensor).reshape(-1).tolist() == expected(datatype).tolist()


@pytest.mark.parametrize("datatype", list(SAMPLES))
def test_outputs_json_and_binary(datatype: str) -> None:
    dtype = V2_TO_DTYPE[datatype]
    y = encode_array("y", expected(datatype).reshape(2, 2))
    z = encode_array("z", expected(datatype)[::-1].reshape(1, 4).copy())
    req = request([], outputs=[{"name": "z", "parameters": {"binary_data": True}},
                               {"name": "y"}])
    wanted = wanted_outputs(req, model(dtype))
    body, header_length = encode_response(model(dtype), "id-1", [y, z], wanted)
    assert header_length is not None
    header = json.loads(body[:header_length])
    assert header["id"] == "id-1" and header["model_version"] == "1"
    z_out, y_out = header["outputs"]
    assert z_out == {"name": "z", "datatype": datatype, "shape": [1, 4],
                     "parameters": {"binary_data_size": len(body) - header_length}}
    assert y_out["shape"] == [2, 2] and y_out["datatype"] == datatype
    assert y_out["data"] == [v if not isinstance(v, float) else pytest.approx(v, rel=1e-3)
                             for v in SAMPLES[datatype]]
    # The binary part decodes back to the reversed values.
    tail = body[header_length:]
    if datatype == "BYTES":
        assert list(unpack_bytes("z", tail, 4)) == SAMPLES[datatype][::-1]
    else:
        got = np.frombuffer(tail, dtype=np.dtype(dtype).newbyteorder("<"))
        assert got.tolist() == expected(datatype)[::-1].tolist()


def test_json_only_response_has_no_header_length() -> None:
    y = encode_array("y", np.zeros((1, 2), np.float32))
    req = request([], outputs=[{"name": "y"}])
    body, header_length = encode_response(model("float32"), None, [y],
                                          wanted_outputs(req, model("float32")))
    assert header_length is None
    assert json.loads(body) == {"model_name": "m", "model_version": "1", "outputs": [
        {"name": "y", "datatype": "FP32", "shape": [1, 2], "data": [0.0, 0.0]}]}


def test_which_outputs_are_binary() -> None:
    m = model("float32")
    assert [(w.name, w.binary) for w in wanted_outputs(request([]), m)] == [
        ("y", False), ("z", False)]
    req = request([], parameters={"binary_data_output": True})
    assert [(w.name, w.binary) for w in wanted_outputs(req, m)] == [("y", True), ("z", True)]
    req = request([], parameters={"binary_data_output": True},
                  outputs=[{"name": "z", "parameters": {"binary_data": False}}, {"name": "y"}])
    assert [(w.name, w.binary) for w in wanted_outputs(req, m)] == [("z", False), ("y", True)]


@pytest.mark.parametrize(("datatype", "data", "error"), [
    ("UINT8", [0, 1, 2, 256], "input 'x': values 0..256 do not fit UINT8"),
    ("INT8", [-129, 0, 0, 0], "input 'x': values -129..0 do not fit INT8"),
    ("UINT64", [0, 0, 0, 2**64], f"input 'x': values 0..{2**64} do not fit UINT64"),
    ("INT32", [1.5, 0, 0, 0], "input 'x': INT32 data must be integers"),
    ("INT32", [True, 0, 0, 0], "input 'x': INT32 data must be integers"),
    ("BOOL", [1, 0, 1, 0], "input 'x': BOOL data must be true or false"),
    ("FP16", [70000.0, 0, 0, 0], "input 'x': values beyond ±65504 do not fit FP16"),
    ("FP32", [True, 0, 0, 0], "input 'x': FP32 data must be numbers"),
    ("BYTES", ["a", 1, "b", "c"], "input 'x': BYTES data must be strings"),
    ("FP32", [[1, 2], [3]], "input 'x': nested data arrays are ragged"),
    ("FP32", [1, [2, 3], 4], "input 'x': nested data arrays are ragged"),
])
def test_json_values_that_do_not_fit(datatype: str, data: list[Any], error: str) -> None:
    req = request([{"name": "x", "shape": [2, 2], "datatype": datatype, "data": data}])
    with pytest.raises(BadRequest) as err:
        inputs_to_tensors(req, b"", model(V2_TO_DTYPE[datatype]))
    assert err.value.message == error


def test_split_body_and_bytes_layout() -> None:
    assert split_body(b"{}xyz", "2") == (b"{}", b"xyz")
    assert split_body(b"{}", None) == (b"{}", b"")
    for bad in ("0", "-1", "6"):
        with pytest.raises(BadRequest):
            split_body(b"{}xyz", bad)
    assert pack_bytes(["ab", ""]) == struct.pack("<I", 2) + b"ab" + struct.pack("<I", 0)
    assert unpack_bytes("x", pack_bytes(["ab", ""]), 2) == ("ab", "")


def test_request_bodies_are_strict() -> None:
    with pytest.raises(BadRequest, match="unknown field `inputz`"):
        decode_request(b'{"inputs": [], "inputz": []}')
    with pytest.raises(BadRequest, match="Object missing required field `inputs`"):
        decode_request(b"{}")
    req = decode_request(b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", '
                         b'"data": [1]}], "id": "a"}')
    assert req.id == "a" and bytes(req.inputs[0].data) == b"[1]"
    assert isinstance(req.inputs[0].data, msgspec.Raw)


def test_datatype_tables_cover_the_protocol() -> None:
    assert set(V2_TO_DTYPE) == set(SAMPLES)
    assert all(DTYPE_TO_V2[V2_TO_DTYPE[d]] == d for d in SAMPLES)


def test_newest_version_is_numeric_then_latest_registered() -> None:
    def rec(version: str, at: int) -> ModelRecord:
        return ModelRecord(name="m", version=version, sha256="", uri="", size=0, inputs=(),
                           outputs=(), created_at_ms=at)

    versions = [rec("2", 1), rec("10", 0), rec("beta", 5), rec("1", 9)]
    assert [m.version for m in sorted(versions, key=version_key)] == ["beta", "1", "2", "10"]


def test_repository_scan_takes_numeric_versions_with_model_onnx(tmp_path: Path) -> None:
    for rel in ("a/1/model.onnx", "a/10/model.onnx", "a/2/other.onnx", "a/x/model.onnx",
                "b c/1/model.onnx", "c/007/model.onnx"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    (tmp_path / "a" / "config.pbtxt").write_text("")
    (tmp_path / "empty").mkdir()
    assert [(n, v, p.relative_to(tmp_path).as_posix()) for n, v, p in scan(tmp_path)] == [
        ("a", "1", "a/1/model.onnx"), ("a", "10", "a/10/model.onnx"),
        ("c", "7", "c/007/model.onnx")]


def test_nan_and_infinity_are_null_in_json_and_kept_in_binary() -> None:
    # JSON has neither; the README promises null there and the values as they are in
    # binary outputs.
    values = np.array([[np.nan, np.inf, -np.inf, 1.5]], np.float32)
    y = encode_array("y", values)
    m = model("float32")
    body, _ = encode_response(m, None, [y], wanted_outputs(request([], outputs=[
        {"name": "y"}]), m))
    assert json.loads(body)["outputs"][0]["data"] == [None, None, None, 1.5]
    body, header_length = encode_response(m, None, [y], wanted_outputs(request([], outputs=[
        {"name": "y", "parameters": {"binary_data": True}}]), m))
    assert header_length is not None
    got = np.frombuffer(body[header_length:], np.float32).reshape(1, 4)
    np.testing.assert_array_equal(got, values)
    # The submit API's data, as its route sends it.
    done = Succeeded(subtask_id="s", task_id="t", account_id="a", runner_id="r",
                     finished_at_ms=1, outputs=(y,))
    sent = json.loads(json_response(submit_response("s", done)).body)
    assert sent["data"] == {"y": [[None, None, None, 1.5]]}
