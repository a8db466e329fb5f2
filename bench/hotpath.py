"""Where one request's CPU goes on the hot path, stage by stage, timed in this process
on inferq's own code with the bench's request bodies (one sample each, as the load sends).

Each stage runs alone in a tight loop, so the figures are lower bounds: under load the
same work also pays cache misses and the event loop's scheduling between stages. They
say which stage grows with a model's tensors; the load table's CPU columns say how much
the whole path costs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort

from bench.models import BenchModel
from bus.embedded import EmbeddedBus
from ingest.bindings import bindings_to_inputs
from ingest.model_store import read_signature
from runner.execute import encode_outputs
from schemas.messages import (
    InferenceRequest,
    ModelRef,
    Succeeded,
    encode,
    request_decoder,
    result_decoder,
)
from schemas.registry import ModelRecord
from schemas.submit_api import json_encoder, submit_body_decoder, submit_response
from schemas.tensors import decode_tensor

#: The stages in request order, with what each times.
STAGES: dict[str, str] = {
    "json": "submit body JSON → bindings (msgspec)",
    "bindings": "bindings → checked arrays → wire tensors (payload JSON, cast, range, shape)",
    "request_codec": "InferenceRequest to bus bytes and back (msgpack)",
    "feeds": "wire tensors → ORT feeds (decode_tensor)",
    "result_codec": "outputs → Succeeded → bus bytes and back",
    "response_json": "result → the submit API's JSON body (tolist + msgspec)",
    "bus_hop": "embedded bus: publish → a waiting tail has the record",
    "executor_hop": "run_in_executor round trip of a no-op",
}


@dataclass
class HotPath:
    model: str
    #: Stage -> microseconds per request (median of repeats).
    us: dict[str, float]


def _time_us(fn: Callable[[], Any], seconds: float) -> float:
    """Median per-call microseconds over five rounds within ``seconds``."""
    fn()
    n = 1
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds / 50:
        fn()
        n += 1
    per_round = max(1, n * 10)
    rounds = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(per_round):
            fn()
        rounds.append((time.perf_counter() - t0) / per_round * 1e6)
    return float(np.median(rounds))


async def _bus_hop_us(rounds: int) -> float:
    """Publish on the embedded bus and wait until a tail woken by it returns the record."""
    loop = asyncio.get_running_loop()
    bus = EmbeddedBus(None)
    tail = bus.tail(["hop"], from_beginning=False)
    await tail.start()
    took = []
    sent = 0.0

    def publish(value: bytes) -> None:
        nonlocal sent
        sent = time.perf_counter()
        bus.publish_soon("hop", None, value)

    for i in range(rounds):
        value = str(i).encode()
        loop.call_soon(publish, value)  # runs once the fetch below is parked
        got = await tail.fetch(1, 5.0)
        took.append(time.perf_counter() - sent)
        if not got or got[0].value != value:
            raise RuntimeError(f"bus hop {i}: the tail returned {got!r}")
    await tail.stop()
    return float(np.median(took)) * 1e6


async def _executor_hop_us(rounds: int) -> float:
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(1) as pool:
        took = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            await loop.run_in_executor(pool, int)
            took.append(time.perf_counter() - t0)
    return float(np.median(took)) * 1e6


def measure(model: BenchModel, seconds: float = 2.0) -> HotPath:
    data = model.path.read_bytes()
    inputs, outputs = read_signature(data)
    record = ModelRecord(name=model.name, version="1", sha256="0" * 64, uri="file:///m",
                         size=len(data), inputs=inputs, outputs=outputs, created_at_ms=0)
    body = model.submit_body()
    per = seconds / (len(STAGES) - 2)  # the two hops are counted in rounds
    us: dict[str, float] = {}

    us["json"] = _time_us(lambda: submit_body_decoder.decode(body), per)
    bindings = submit_body_decoder.decode(body).bindings
    us["bindings"] = _time_us(lambda: bindings_to_inputs(bindings, record), per)
    tensors, _ = bindings_to_inputs(bindings, record)
    req = InferenceRequest(subtask_id="s" * 36, task_id="t" * 36, account_id="bench",
                           model=ModelRef(name=model.name, version="1", uri="file:///m",
                                          sha256="0" * 64), inputs=tensors)
    us["request_codec"] = _time_us(lambda: request_decoder.decode(encode(req)), per)
    us["feeds"] = _time_us(lambda: {t.name: decode_tensor(t) for t in tensors}, per)
    # session.run itself is the raw ORT table's batch-1 figure; its outputs feed the next
    # stage here.
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    names = [o.name for o in outputs]
    values = session.run(names, {t.name: decode_tensor(t) for t in tensors})

    def result_codec() -> Any:
        res = Succeeded(subtask_id=req.subtask_id, task_id=req.task_id,
                        account_id=req.account_id, outputs=encode_outputs(names, values))
        return result_decoder.decode(encode(res))
    us["result_codec"] = _time_us(result_codec, per)
    result = result_codec()
    us["response_json"] = _time_us(
        lambda: json_encoder.encode(submit_response(req.subtask_id, result)), per)
    us["bus_hop"] = asyncio.run(_bus_hop_us(2000))
    us["executor_hop"] = asyncio.run(_executor_hop_us(2000))
    return HotPath(model.name, us)


def table(paths: list[HotPath]) -> str:
    if not paths:
        return ""
    lines = ["\n", "## Hot path, µs per request by stage (one sample, this process)", "",
             "| stage | what | " + " | ".join(p.model for p in paths) + " |",
             "|---|---|" + "---:|" * len(paths)]
    for stage, what in STAGES.items():
        lines.append(f"| {stage} | {what} | "
                     + " | ".join(f"{p.us[stage]:,.1f}" for p in paths) + " |")
    return "\n".join(lines)
