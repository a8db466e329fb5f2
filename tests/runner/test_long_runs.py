"""A run longer than the group's session timeout and poll interval keeps the runner in
its group: the run is on an executor thread while the loop stays free to heartbeat, and a
full runner keeps polling its paused partitions.

The test broker cannot show an eviction: tansu 0.6 keeps a member that stops
heartbeating and polling (checked: a consumer whose loop was blocked for 7 s, with a 3 s
session timeout and a 2 s poll interval, kept its partition and was never revoked). So
the test checks what keeps a member in its group on a broker that does evict (Apache
Kafka): the event loop never stalls for as long as a heartbeat interval, and the consumer
is polled at least every half poll interval, while the run lasts twice the session
timeout. Both fail with the run made on the loop (checked: the loop stalled 5.1 s). And
nothing runs twice: an evicted member's uncommitted request would be redelivered."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from bus.base import Bus, TopicPartitionKey
from bus.factory import make_bus
from bus.kafka import KafkaBus, KafkaOptions
from schemas.messages import InferenceRequest, ModelRef, Succeeded, encode, result_decoder
from schemas.tensors import encode_array
from tests.harness import SESSION_TIMEOUT_MS
from tests.onnx_models import loop_model
from tests.runner.on_bus import collect, runner_on_bus

MAX_POLL_INTERVAL_MS = 2000
#: How long the long run is made to last: past both bounds above, with room.
LONG_RUN_MS = 2 * SESSION_TIMEOUT_MS


def _bus(kafka_bootstrap: str | None, tmp_path: Path) -> Bus:
    if kafka_bootstrap is None:
        return make_bus(None, tmp_path / "bus")
    return KafkaBus(KafkaOptions(bootstrap=kafka_bootstrap, fetch_max_wait_ms=5,
                                 session_timeout_ms=SESSION_TIMEOUT_MS,
                                 heartbeat_interval_ms=SESSION_TIMEOUT_MS // 5,
                                 max_poll_interval_ms=MAX_POLL_INTERVAL_MS))


def _request(ref: ModelRef, steps: int) -> InferenceRequest:
    return InferenceRequest(
        subtask_id=str(uuid.uuid4()), task_id="t", account_id="a", model=ref,
        inputs=(encode_array("x", np.array([1.0], np.float32)),
                encode_array("steps", np.array(steps, np.int64))),
        created_at_ms=int(time.time() * 1000))


async def _watch_the_loop(stalls: list[float]) -> None:
    """Appends how late each 20 ms sleep woke: how long the loop was held."""
    while True:
        t0 = time.monotonic()
        await asyncio.sleep(0.02)
        stalls.append(time.monotonic() - t0 - 0.02)


async def test_a_run_past_the_session_timeout_keeps_the_runner_in_its_group(
        kafka_bootstrap: str | None, tmp_path: Path) -> None:
    path = tmp_path / "loop.onnx"
    path.write_bytes(loop_model(256))
    ref = ModelRef(name="loop", version="1", uri=path.as_uri(),
                   sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    bus = _bus(kafka_bootstrap, tmp_path)
    revoked: list[TopicPartitionKey] = []
    polls: list[float] = []  # when the runner's consumer was polled
    group_consumer = bus.group_consumer

    def watched(*args: Any, **kwargs: Any) -> Any:
        consumer = group_consumer(*args, **kwargs)
        consumer.on_revoked(revoked.extend)
        fetch = consumer.fetch

        async def polled(*a: Any, **kw: Any) -> Any:
            polls.append(time.monotonic())
            return await fetch(*a, **kw)

        consumer.fetch = polled
        return consumer

    bus.group_consumer = watched  # type: ignore[method-assign]
    # One request in flight: while the long one runs, the partition is paused.
    async with runner_on_bus(kafka_bootstrap, tmp_path, bus=bus, max_in_flight=1,
                             intra_op_threads=1) as on:
        # Calibrate on this machine: how long a step takes (the second probe's pace; the
        # first also pays for the model's first real run).
        probes = [_request(ref, 200) for _ in range(2)]
        for probe in probes:
            await bus.publish(on.topics.requests, probe.subtask_id.encode(), encode(probe))
        timed = await collect(bus, on.topics.results, {p.subtask_id for p in probes})
        assert all(isinstance(r, Succeeded) for r in timed.values()), timed
        step_ms = min(r.timings.inference_ms for r in timed.values()) / 200
        steps = math.ceil(LONG_RUN_MS / max(step_ms, 0.01))
        sent: set[str] = {p.subtask_id for p in probes}
        # A host that speeds up mid-test makes the run shorter than planned: again, longer
        # (three rounds at most).
        for _ in range(3):
            long = _request(ref, min(steps, 10_000_000))
            short = [_request(ref, 1) for _ in range(2)]
            stalls: list[float] = []
            watcher = asyncio.create_task(_watch_the_loop(stalls))
            t_sent = time.monotonic()
            for r in (long, *short):
                bus.publish_soon(on.topics.requests, r.subtask_id.encode(), encode(r))
            ids = {r.subtask_id for r in (long, *short)}
            sent |= ids
            try:
                got = await collect(bus, on.topics.results, ids, timeout_s=120)
            finally:
                watcher.cancel()
            t_done = time.monotonic()
            assert all(isinstance(res, Succeeded) for res in got.values()), got
            ran_ms = got[long.subtask_id].timings.inference_ms
            if ran_ms > SESSION_TIMEOUT_MS:
                break
            steps = math.ceil(steps * LONG_RUN_MS / ran_ms)
        assert ran_ms > SESSION_TIMEOUT_MS, f"the long run took only {ran_ms:.0f} ms"
        heartbeat_ms = SESSION_TIMEOUT_MS / 5
        assert max(stalls) * 1000 < heartbeat_ms, f"the loop stalled {max(stalls):.2f} s"
        during = [t_sent, *(t for t in polls if t_sent < t < t_done), t_done]
        gap_ms = max(b - a for a, b in itertools.pairwise(during)) * 1000
        assert gap_ms < MAX_POLL_INTERVAL_MS / 2, f"the consumer went {gap_ms:.0f} ms unpolled"

        # Nothing redelivered: once the handlers finish, nothing runs again (a request
        # redelivered after an eviction would run the long run once more), and each
        # request has one result.
        in_flight = [on.metrics.get_sample_value("inferq_runner_in_flight")]
        for _ in range(30):
            await asyncio.sleep(0.05)
            in_flight.append(on.metrics.get_sample_value("inferq_runner_in_flight"))
        assert in_flight[-20:] == [0] * 20, in_flight
        assert on.metrics.get_sample_value("inferq_runner_results_total",
                                           {"state": "succeeded"}) == len(sent)
        counts: dict[str, int] = {}
        tail = bus.tail([on.topics.results], from_beginning=True)
        await tail.start()
        try:
            for _ in range(100):
                if tail.caught_up():
                    break
                for rec in await tail.fetch(100, 0.2):
                    sid = result_decoder.decode(rec.value or b"").subtask_id
                    counts[sid] = counts.get(sid, 0) + 1
            assert tail.caught_up(), "could not read the results topic to its end"
        finally:
            await tail.stop()
        assert counts == dict.fromkeys(sent, 1)
        assert revoked == [], f"partitions revoked during the run: {revoked}"
