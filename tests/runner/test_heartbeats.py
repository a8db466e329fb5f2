"""A runner's heartbeats name the models it is loading, sent as each load begins and ends
(not only every ``heartbeat_s``), on both buses."""

from __future__ import annotations

import hashlib
import time
import uuid
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from bus.base import Bus
from bus.factory import make_bus
from bus.topics import TopicNames
from runner.service import Runner
from runner.settings import RunnerSettings
from schemas.bus_settings import BusSettings
from schemas.messages import Heartbeat, InferenceRequest, ModelRef, encode, heartbeat_decoder
from schemas.tensors import encode_array
from tests.onnx_models import add_model
from tests.runner.test_batcher import collect


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
    bus_settings = BusSettings(kafka_bootstrap=kafka_bootstrap,
                               topic_prefix=f"h{uuid.uuid4().hex[:8]}.", partitions=1,
                               data_dir=tmp_path / "bus")
    topics = TopicNames(bus_settings.topic_prefix)
    # Periodic beats an hour apart: every beat after the first is one a load sent.
    settings = RunnerSettings(bus=bus_settings, runner_id="r1", group_id=f"g{uuid.uuid4().hex}",
                              cache_dir=tmp_path / "cache", heartbeat_s=3600)
    bus = make_bus(kafka_bootstrap, tmp_path / "bus")
    await bus.start()
    try:
        await bus.ensure_topics(topics.specs(1))
        async with Runner(settings, bus, CollectorRegistry()):
            for model in (ref, gone):
                req = InferenceRequest(subtask_id=str(uuid.uuid4()), task_id="t",
                                       account_id="a", model=model,
                                       inputs=(encode_array("x", np.ones((1, 4), np.float32)),),
                                       created_at_ms=int(time.time() * 1000))
                await bus.publish(topics.requests, req.subtask_id.encode(), encode(req))
                await collect(bus, topics.results, {req.subtask_id})
            got = await beats(bus, topics.runners, 5)
    finally:
        await bus.stop()
    seen = [(b.models_loading, b.models_loaded) for b in got[:5]]
    assert seen == [
        ((), ()),  # the first periodic beat
        (("add:3",), ()),  # the request's load begins...
        ((), ("add:3",)),  # ...and ends
        (("gone:1",), ("add:3",)),
        ((), ("add:3",)),  # a failed load ends too
    ]

