"""A runner on a bus of its own (embedded, or the test Kafka broker), for the tests that
drive one with records instead of HTTP."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from bus.base import Bus
from bus.factory import bus_for
from bus.topics import TopicNames
from runner.service import Runner
from runner.settings import RunnerSettings
from schemas.messages import SubtaskResult, result_decoder
from tests.harness import bus_settings


@dataclass(frozen=True, slots=True)
class OnBus:
    runner: Runner
    bus: Bus
    topics: TopicNames
    metrics: CollectorRegistry


@asynccontextmanager
async def runner_on_bus(kafka_bootstrap: str | None, tmp_path: Path, bus: Bus | None = None,
                        **settings: Any) -> AsyncIterator[OnBus]:
    """A started runner ``r1`` on fresh one-partition topics, on ``bus`` (not started
    yet; default: the one the tests' ``bus_settings`` describe); ``settings`` override
    ``RunnerSettings``' (heartbeat_s 5 unless given)."""
    bus_config = replace(bus_settings(kafka_bootstrap, tmp_path / "bus"), partitions=1)
    topics = TopicNames(bus_config.topic_prefix)
    settings.setdefault("heartbeat_s", 5)
    runner_settings = RunnerSettings(bus=bus_config, runner_id="r1",
                                     group_id=f"g{uuid.uuid4().hex}",
                                     cache_dir=tmp_path / "cache", **settings)
    bus = bus or bus_for(bus_config, "test-runner")
    await bus.start()
    metrics = CollectorRegistry()
    try:
        await bus.ensure_topics(topics.specs(1))
        async with Runner(runner_settings, bus, metrics) as runner:
            yield OnBus(runner, bus, topics, metrics)
    finally:
        await bus.stop()


async def collect(bus: Bus, topic: str, ids: set[str], timeout_s: float = 30
                  ) -> dict[str, SubtaskResult]:
    """The results of ``ids`` on ``topic`` (bounded: fails naming how many are missing)."""
    tail = bus.tail([topic], from_beginning=True)
    await tail.start()
    got: dict[str, SubtaskResult] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while ids - set(got) and time.monotonic() < deadline:
            for rec in await tail.fetch(500, 0.2):
                if rec.value is not None:
                    r = result_decoder.decode(rec.value)
                    if r.subtask_id in ids:
                        got[r.subtask_id] = r
    finally:
        await tail.stop()
    assert set(got) == ids, f"{len(ids - set(got))} results missing"
    return got
