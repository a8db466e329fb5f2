"""The demo that `inferq up` sets up on first start: a model, a key and a task.

The demo model mirrors the submit API's example (``input_ids`` and ``attention_mask``
in, ``output_logits`` out): a masked sum of embeddings, small and deterministic. Its key
is written to ``<data-dir>/demo.json`` (mode 0600) so later starts can print the same
curl line; keys made any other way are only ever stored hashed.
"""

from __future__ import annotations

import json
import os
import shlex
import time
import uuid
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ingest.context import IngestContext
from schemas.keys import key_hash, new_key
from schemas.registry import ApiKeyRecord, TaskRecord

DEMO_ACCOUNT = "demo"
DEMO_BODY = {
    "bindings": [
        {"tensorName": "input_ids", "payloadType": "Json",
         "payload": "[[101, 2054, 2003, 1996, 3007, 1997, 2605, 102]]", "fileUrl": None},
        {"tensorName": "attention_mask", "payloadType": "Json",
         "payload": "[[1, 1, 1, 1, 1, 1, 1, 1]]", "fileUrl": None},
    ]
}


def demo_model_bytes(vocab: int = 1024, width: int = 4) -> bytes:
    table = np.random.default_rng(0).standard_normal((vocab, width)).astype(np.float32)
    nodes = [
        helper.make_node("Mod", ["input_ids", "vocab"], ["ids"]),
        helper.make_node("Gather", ["table", "ids"], ["emb"]),
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "last"], ["mask3"]),
        helper.make_node("Mul", ["emb", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "seq_axis"], ["output_logits"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "demo",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("output_logits", TensorProto.FLOAT, ["batch", width])],
        initializer=[
            numpy_helper.from_array(table, "table"),
            numpy_helper.from_array(np.array(vocab, dtype=np.int64), "vocab"),
            numpy_helper.from_array(np.array([-1], dtype=np.int64), "last"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "seq_axis"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


def curl_line(base_url: str, task_id: str, key: str) -> str:
    return (
        f"curl -s -X POST {base_url}/api/inference/tasks/{task_id} "
        f"-H 'Content-Type: application/json' -H 'X-Api-Key: {key}' "
        f"-d {shlex.quote(json.dumps(DEMO_BODY))}"
    )


async def ensure_demo(ctx: IngestContext, data_dir: Path) -> tuple[str, str]:
    """The demo (task id, key), created on first start and reused after."""
    state_file = data_dir / "demo.json"
    if state_file.exists():
        state = json.loads(state_file.read_text())
        if state.get("task_id") in ctx.registry.tasks and state.get("key_id") in ctx.registry.keys:
            return state["task_id"], state["key"]
    now = int(time.time() * 1000)
    model = ctx.models.save("demo", "1", demo_model_bytes())
    await ctx.registry.put(model)
    key_id, key = new_key()
    await ctx.registry.put(ApiKeyRecord(key_id=key_id, account_id=DEMO_ACCOUNT,
                                        key_hash=key_hash(key), name="demo", created_at_ms=now))
    task = TaskRecord(id=str(uuid.uuid4()), account_id=DEMO_ACCOUNT, name="demo",
                      model_id=model.id, fill_bindings_via_api=True, created_at_ms=now)
    await ctx.registry.put(task)
    fd = os.open(state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"task_id": task.id, "key_id": key_id, "key": key}, f)
    return task.id, key
