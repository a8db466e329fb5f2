"""The model store: ONNX files kept by sha256 in a directory, and their signatures."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import onnx

from ingest.errors import BadRequest
from schemas.registry import ModelRecord, TensorSpec
from schemas.tensors import ONNX_ELEM_TO_DTYPE


def _specs(values: list[onnx.ValueInfoProto], skip: set[str]) -> tuple[TensorSpec, ...]:
    out = []
    for v in values:
        if v.name in skip:
            continue
        t = v.type.tensor_type
        dtype = ONNX_ELEM_TO_DTYPE.get(t.elem_type)
        if dtype is None:
            raise BadRequest(f"model tensor {v.name!r} has an unsupported element type")
        shape = tuple(
            d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim
        )
        out.append(TensorSpec(name=v.name, dtype=dtype, shape=shape))
    return tuple(out)


def read_signature(data: bytes) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Inputs and outputs of an ONNX graph (initializers are not inputs)."""
    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # onnx raises DecodeError or RuntimeError variants
        raise BadRequest(f"not a readable ONNX model: {exc}") from exc
    graph = model.graph
    if not graph.input or not graph.output:
        raise BadRequest("not a usable ONNX model: the graph has no inputs or outputs")
    inits = {i.name for i in graph.initializer}
    return _specs(list(graph.input), inits), _specs(list(graph.output), set())


class ModelStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def save(self, name: str, version: str, data: bytes) -> ModelRecord:
        """Store ``data`` (already checked to be ONNX) and describe it."""
        inputs, outputs = read_signature(data)
        digest = hashlib.sha256(data).hexdigest()
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{digest}.onnx"
        if not path.exists():
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return ModelRecord(
            name=name,
            version=version,
            sha256=digest,
            uri=path.resolve().as_uri(),
            size=len(data),
            inputs=inputs,
            outputs=outputs,
            created_at_ms=int(time.time() * 1000),
        )
