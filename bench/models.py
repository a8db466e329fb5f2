"""The bench's models, built locally with the onnx helper API, and their request bodies."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from inferq.demo import demo_model_bytes


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def tiny(path: Path) -> Path:
    """One Add on [-1, 4] FP32: nothing but per-request overhead."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        initializer=[numpy_helper.from_array(np.ones(4, np.float32), "one")])
    return _save(graph, path)


def mlp(path: Path, sizes: tuple[int, ...] = (256, 1024, 1024, 10)) -> Path:
    """Dense layers with ReLU between, dynamic batch."""
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    prev = "x"
    for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
        w = (rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"),
                  numpy_helper.from_array(np.zeros(b, np.float32), f"b{i}")]
        out = "y" if i == len(sizes) - 2 else f"h{i}"
        mm = f"m{i}"
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [mm]))
        if out == "y":
            nodes.append(helper.make_node("Add", [mm, f"b{i}"], ["y"]))
        else:
            nodes.append(helper.make_node("Add", [mm, f"b{i}"], [f"a{i}"]))
            nodes.append(helper.make_node("Relu", [f"a{i}"], [out]))
        prev = out
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", sizes[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", sizes[-1]])],
        initializer=inits)
    return _save(graph, path)


def tokens(path: Path) -> Path:
    """input_ids + attention_mask -> output_logits, like the submit API's example: the
    very model `inferq up` serves as its demo."""
    path.write_bytes(demo_model_bytes())
    return path


_V2 = {"float32": "FP32", "int64": "INT64"}


@dataclass(frozen=True)
class BenchModel:
    name: str
    path: Path
    #: One sample: input name -> (dtype, row values).
    sample: dict[str, tuple[str, list[Any]]]

    def feeds(self, batch: int) -> dict[str, np.ndarray]:
        return {n: np.tile(np.asarray([v], dtype=dt), (batch, 1))
                for n, (dt, v) in self.sample.items()}

    def submit_body(self) -> bytes:
        return json.dumps({"bindings": [
            {"tensorName": n, "payloadType": "Json", "payload": json.dumps([v])}
            for n, (_, v) in self.sample.items()]}).encode()

    def v2_body(self) -> bytes:
        return json.dumps({"inputs": [
            {"name": n, "shape": [1, len(v)], "datatype": _V2[dt], "data": v}
            for n, (dt, v) in self.sample.items()]}).encode()

    def v2_binary_body(self) -> tuple[bytes, int]:
        """The v2 binary tensor data extension, as Triton's clients send by default:
        inputs as raw little-endian bytes after the JSON header, outputs asked for as
        binary. Returns the body and the JSON header's length."""
        raws = [np.asarray([v], dtype=dt).tobytes() for dt, v in self.sample.values()]
        header = json.dumps({
            "inputs": [{"name": n, "shape": [1, len(v)], "datatype": _V2[dt],
                        "parameters": {"binary_data_size": len(raw)}}
                       for (n, (dt, v)), raw in zip(self.sample.items(), raws, strict=True)],
            "parameters": {"binary_data_output": True}}).encode()
        return header + b"".join(raws), len(header)


def build(names: list[str], out: Path) -> dict[str, BenchModel]:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    made: dict[str, BenchModel] = {}
    for name in names:
        if name == "tiny":
            made[name] = BenchModel(name, tiny(out / "tiny.onnx"),
                                    {"x": ("float32", [0.5, 1.5, 2.5, 3.5])})
        elif name == "mlp":
            made[name] = BenchModel(name, mlp(out / "mlp.onnx"), {"x": (
                "float32", [round(float(v), 4) for v in rng.standard_normal(256)])})
        elif name == "mlp_big":
            made[name] = BenchModel(name, mlp(out / "mlp_big.onnx", (1024, 8192, 8192, 1024)),
                                    {"x": ("float32", [round(float(v), 4)
                                                       for v in rng.standard_normal(1024)])})
        elif name == "tokens":
            made[name] = BenchModel(name, tokens(out / "tokens.onnx"), {
                "input_ids": ("int64", [101, 2054, 2003, 1996, 3007, 1997, 2605, 102]),
                "attention_mask": ("int64", [1] * 8)})
        else:
            raise SystemExit(f"unknown model {name!r}: tiny, mlp, tokens, mlp_big")
    return made
