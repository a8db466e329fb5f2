"""A runner's heartbeats name the models it is loading, sent as each load begins and ends
(not only every ``heartbeat_s``), on both buses."""

from __future__ import annotations

import hashlib
import time
import uuid
from pathlib import Path

import numpy as np

from bus.base import Bus
from schemas.messages import Heartbeat, InferenceRequest, ModelRef, encode, heartbeat_decoder
from schemas.tensors import encode_array
from tests.onnx_models import add_model
from tests.runner.on_bus import collect, runner_on_bus


async def beats(bus: Bus, topic: str, until: int, timeout_s: float = 20) -> list[Heartbeat]:
    """The runners topic's heartbeats from its start, once it holds ``until`` (bounded)."""
    tail = bus.tail([topic], from_beginning=True)
    await tail.start()
    got: list[Heartbeat] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(got) < until and time.monotonic() < deadline:
            got += [heartbeat_decoder.decode(r.value) for r in await tail.fetch(100, 0.2)
                    if r.value is not None]
    finally:
        await tail.stop()
    return got


async def test_a_load_at_a_request_shows_in_heartbeats_as_it_begins_and_ends(
        kafka_bootstrap: str | None, tmp_path: Path) -> None:
    path = tmp_path / "add.onnx"
    path.write_bytes(add_model())
    ref = ModelRef(name="add", version="3", uri=path.as_uri(),
                   sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    # Registered, but its file is gone: its load fails.
    gone = ModelRef(name="gone", version="1", uri=(tmp_path / "gone.onnx").as_uri(),
                    sha256="0" * 64)
    # Periodic beats an hour apart: every beat after the first is one a load sent.
    async with runner_on_bus(kafka_bootstrap, tmp_path, heartbeat_s=3600) as on:
        for model in (ref, gone):
            req = InferenceRequest(subtask_id=str(uuid.uuid4()), task_id="t", account_id="a",
                                   model=model,
                                   inputs=(encode_array("x", np.ones((1, 4), np.float32)),),
                                   created_at_ms=int(time.time() * 1000))
            await on.bus.publish(on.topics.requests, req.subtask_id.encode(), encode(req))
            await collect(on.bus, on.topics.results, {req.subtask_id})
        got = await beats(on.bus, on.topics.runners, 5)
    seen = [(b.models_loading, b.models_loaded) for b in got[:5]]
    assert seen == [
        ((), ()),  # the first periodic beat
        (("add:3",), ()),  # the request's load begins...
        ((), ("add:3",)),  # ...and ends
        (("gone:1",), ("add:3",)),
        ((), ("add:3",)),  # a failed load ends too
    ]
