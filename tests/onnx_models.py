"""Small ONNX models the tests build with the onnx helper API (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _model(graph: onnx.GraphProto, opset: int = 13) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def add_model(width: int = 4) -> bytes:
    """y = x + 1, FP32 [-1, width]."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])], "add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])],
        initializer=[numpy_helper.from_array(np.ones((width,), np.float32), "one")],
    )
    return _model(graph)


def int_model() -> bytes:
    """Two int64 inputs: sum = a + b and prod = a * b, shape [-1, 3]."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["sum"]),
         helper.make_node("Mul", ["a", "b"], ["prod"])],
        "ints",
        [helper.make_tensor_value_info("a", TensorProto.INT64, ["n", 3]),
         helper.make_tensor_value_info("b", TensorProto.INT64, ["n", 3])],
        [helper.make_tensor_value_info("sum", TensorProto.INT64, ["n", 3]),
         helper.make_tensor_value_info("prod", TensorProto.INT64, ["n", 3])],
    )
    return _model(graph)


def text_model() -> bytes:
    """Upper-cases a string tensor of shape [1] (StringNormalizer)."""
    graph = helper.make_graph(
        [helper.make_node("StringNormalizer", ["text"], ["upper"], case_change_action="UPPER",
                           locale="C.UTF-8")],
        "text",
        [helper.make_tensor_value_info("text", TensorProto.STRING, [1])],
        [helper.make_tensor_value_info("upper", TensorProto.STRING, [1])],
    )
    return _model(graph, opset=13)


def image_model() -> bytes:
    """Mean over H and W of an FP32 [1, 3, 8, 8] image -> [1, 3] (for Binary .npy inputs)."""
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image"], ["mean"], axes=[2, 3], keepdims=0)], "img",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("mean", TensorProto.FLOAT, [1, 3])],
    )
    return _model(graph)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def token_model(vocab: int = 4096, width: int = 4) -> bytes:
    """input_ids int64 [batch, seq] -> output_logits FP32 [batch, width] (mean embedding)."""
    table = np.random.default_rng(7).standard_normal((vocab, width)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Mod", ["input_ids", "vocab"], ["ids"]),
         helper.make_node("Gather", ["table", "ids"], ["emb"]),
         helper.make_node("ReduceMean", ["emb"], ["output_logits"], axes=[1], keepdims=0)],
        "tokens",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("output_logits", TensorProto.FLOAT, ["batch", width])],
        initializer=[numpy_helper.from_array(table, "table"),
                     numpy_helper.from_array(np.array(vocab, dtype=np.int64), "vocab")],
    )
    return _model(graph)


def gather_model() -> bytes:
    """Looks rows up in a [4, 2] table; an index past 3 makes ONNX Runtime fail at run time."""
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "idx"], ["rows"])], "gather",
        [helper.make_tensor_value_info("idx", TensorProto.INT64, ["n"])],
        [helper.make_tensor_value_info("rows", TensorProto.FLOAT, ["n", 2])],
        initializer=[numpy_helper.from_array(np.arange(8, dtype=np.float32).reshape(4, 2),
                                             "table")],
    )
    return _model(graph)


def loop_model(n: int = 512) -> bytes:
    """y = mean(x·I^steps) over an [n, n] matrix: ``steps`` (an input) MatMuls in a Loop,
    so one model runs in milliseconds (steps=1) or for tens of seconds."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("MatMul", ["h_in", "w"], ["h_out"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("h_in", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("h_out", TensorProto.FLOAT, [n, n])])
    graph = helper.make_graph(
        [helper.make_node("Expand", ["x", "shape"], ["h0"]),
         helper.make_node("Loop", ["steps", "", "h0"], ["hN"], body=body),
         helper.make_node("ReduceMean", ["hN"], ["y"], keepdims=1)], "loop",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1]),
         helper.make_tensor_value_info("steps", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
        initializer=[numpy_helper.from_array(np.eye(n, dtype=np.float32), "w"),
                     numpy_helper.from_array(np.array([n, n], np.int64), "shape")])
    return _model(graph)
