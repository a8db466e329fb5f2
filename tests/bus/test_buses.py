"""The bus contract, on the embedded bus and on Kafka."""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from pathlib import Path

import pytest

from bus.base import Bus, Record
from bus.embedded import EmbeddedBus
from bus.factory import bus_for, make_bus
from bus.kafka import KafkaBus, KafkaTail
from bus.topics import TopicSpec
from schemas.bus_settings import BusSettings
from schemas.env import SettingError
from schemas.messages import SubtaskEvent, Succeeded, Timings, encode, event_decoder, result_decoder
from schemas.tensors import Tensor
from schemas.webhooks import WebhookTarget
from tests.harness import SESSION_TIMEOUT_MS


async def drain(fetch_from: object, want: int) -> list[Record]:
    got: list[Record] = []
    for _ in range(200):
        got += await fetch_from.fetch(100, 0.05)  # type: ignore[attr-defined]
        if len(got) >= want:
            break
    return got


async def make(kafka_bootstrap: str | None, tmp_path: Path) -> Bus:
    bus = make_bus(kafka_bootstrap, tmp_path / "bus", fetch_max_wait_ms=5,
                   session_timeout_ms=SESSION_TIMEOUT_MS)
    await bus.start()
    return bus


async def test_uncommitted_records_are_delivered_again(kafka_bootstrap: str | None,
                                                       tmp_path: Path) -> None:
    bus = await make(kafka_bootstrap, tmp_path)
    topic, group = f"t-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    try:
        await bus.ensure_topics([TopicSpec(topic, 1, compact=False)])
        for i in range(10):
            await bus.publish(topic, b"k%d" % i, b"v%d" % i, (("h", b"x"),))
        consumer = bus.group_consumer([topic], group)
        await consumer.start()
        got = await drain(consumer, 10)
        assert [r.value for r in got] == [b"v%d" % i for i in range(10)]
        assert got[0].header("h") == b"x" and got[0].key == b"k0"
        await consumer.commit({(topic, got[4].partition): got[4].offset + 1})
        await consumer.stop()

        again = bus.group_consumer([topic], group)
        await again.start()
        redelivered = await drain(again, 5)
        assert [r.value for r in redelivered] == [b"v%d" % i for i in range(5, 10)]
        await again.stop()
    finally:
        await bus.stop()


async def test_tail_reads_every_record_and_knows_when_caught_up(
    kafka_bootstrap: str | None, tmp_path: Path
) -> None:
    bus = await make(kafka_bootstrap, tmp_path)
    topic = f"t-{uuid.uuid4().hex[:8]}"
    try:
        await bus.ensure_topics([TopicSpec(topic, 2, compact=False)])
        for i in range(6):
            await bus.publish(topic, b"k%d" % i, b"v%d" % i)
        tail = bus.tail([topic], from_beginning=True)
        await tail.start()
        assert not tail.caught_up()
        got = await drain(tail, 6)
        assert sorted(r.value or b"" for r in got) == [b"v%d" % i for i in range(6)]
        assert tail.caught_up()
        live = bus.tail([topic], from_beginning=False)
        await live.start()
        assert live.caught_up()
        await bus.publish(topic, b"new", b"new")
        assert [r.value for r in await drain(live, 1)] == [b"new"]
        await live.stop()
        await tail.stop()
    finally:
        await bus.stop()


async def test_records_and_the_messages_read_from_them_are_not_tracked_by_the_gc(
    kafka_bootstrap: str | None, tmp_path: Path
) -> None:
    """Services keep hundreds of thousands of records and decoded results and events (the
    embedded bus's logs, the result, event and lifecycle books): the cyclic collector
    walked every one of them, in pauses of ~0.4 s on this host. Holding only scalars,
    bytes and tuples of each other, they can form no cycle, so they are not tracked."""
    bus = await make(kafka_bootstrap, tmp_path)
    topic = f"t-{uuid.uuid4().hex[:8]}"
    result = Succeeded(subtask_id="s", task_id="t", account_id="a", timings=Timings(),
                       outputs=(Tensor(name="y", dtype="float32", shape=(1,), data=b"\0" * 4),),
                       webhook=WebhookTarget(url="https://example.com/hook"))
    event = SubtaskEvent(subtask_id="s", task_id="t", account_id="a", kind="queued", at_ms=1)
    try:
        await bus.ensure_topics([TopicSpec(topic, 1, compact=False)])
        await bus.publish(topic, b"s", encode(result), (("h", b"x"),))
        await bus.publish(topic, b"s", encode(event))
        tail = bus.tail([topic], from_beginning=True)
        await tail.start()
        got = await drain(tail, 2)
        await tail.stop()
        decoded = [result_decoder.decode(got[0].value or b""),
                   event_decoder.decode(got[1].value or b"")]
        assert decoded == [result, event] and isinstance(decoded[0], Succeeded)
        outputs = decoded[0].outputs
        gc.collect()  # untracks the tuples that hold only untracked objects
        untracked = [*got, *decoded, outputs, outputs[0]]
        assert [gc.is_tracked(o) for o in untracked] == [False] * len(untracked)
    finally:
        await bus.stop()


async def test_a_background_tail_sees_live_records_and_parks_for_the_longer_wait(
    kafka_bootstrap: str | None, tmp_path: Path
) -> None:
    bus = make_bus(kafka_bootstrap, tmp_path / "bus", fetch_max_wait_ms=5,
                   background_fetch_wait_ms=40, session_timeout_ms=SESSION_TIMEOUT_MS)
    await bus.start()
    topic = f"t-{uuid.uuid4().hex[:8]}"
    try:
        await bus.ensure_topics([TopicSpec(topic, 2, compact=False)])
        background = bus.tail([topic], from_beginning=False, background=True)
        prompt = bus.tail([topic], from_beginning=False)
        await background.start()
        await prompt.start()
        if isinstance(bus, KafkaBus):
            assert isinstance(background, KafkaTail) and isinstance(prompt, KafkaTail)
            assert (background.fetch_max_wait_ms, prompt.fetch_max_wait_ms) == (40, 5)
        for i in range(3):
            await bus.publish(topic, b"k%d" % i, b"v%d" % i)
        assert sorted(r.value or b"" for r in await drain(background, 3)) == [b"v0", b"v1",
                                                                                 b"v2"]
        assert len(await drain(prompt, 3)) == 3
        await background.stop()
        await prompt.stop()
    finally:
        await bus.stop()


async def test_a_deferred_reader_gets_every_record_the_delay_after_a_prompt_one(
    kafka_bootstrap: str | None, tmp_path: Path
) -> None:
    """On the embedded bus a reader deferring a topic is woken the bus's delay after a
    record lands there (one timer for all), a prompt reader in the same step; a record on
    a topic it did not defer wakes it at once. On Kafka ``deferred`` changes nothing and
    both read everything."""
    bus = make_bus(kafka_bootstrap, tmp_path / "bus", fetch_max_wait_ms=5,
                   session_timeout_ms=SESSION_TIMEOUT_MS, embedded_defer_ms=300)
    await bus.start()
    lines, results = f"l-{uuid.uuid4().hex[:8]}", f"r-{uuid.uuid4().hex[:8]}"
    try:
        await bus.ensure_topics([TopicSpec(lines, 1, compact=False),
                                 TopicSpec(results, 1, compact=False)])
        prompt = bus.tail([lines], from_beginning=False)
        late = bus.tail([lines, results], from_beginning=False, deferred=[lines])
        late_group = bus.group_consumer([lines], f"g-{uuid.uuid4().hex[:8]}",
                                        deferred=[lines])
        for reader in (prompt, late, late_group):
            await reader.start()
        if isinstance(bus, EmbeddedBus):
            reads = [asyncio.create_task(r.fetch(10, 5)) for r in (prompt, late, late_group)]
            await asyncio.sleep(0)  # all three wait
            t0 = time.monotonic()
            await bus.publish(lines, b"k", b"line")
            for _ in range(5):
                await asyncio.sleep(0)
            assert [t.done() for t in reads] == [True, False, False]
            got = await asyncio.gather(*reads)
            assert time.monotonic() - t0 >= 0.25
            assert [[r.value for r in recs] for recs in got] == [[b"line"]] * 3
            # A record on a topic it did not defer wakes it at once.
            read = asyncio.create_task(late.fetch(10, 5))
            await asyncio.sleep(0)
            await bus.publish(results, b"k", b"result")
            for _ in range(5):
                await asyncio.sleep(0)
            assert read.done() and [r.value for r in read.result()] == [b"result"]
        else:
            await bus.publish(lines, b"k", b"line")
            await bus.publish(results, b"k", b"result")
            assert [r.value for r in await drain(prompt, 1)] == [b"line"]
            assert sorted(r.value or b"" for r in await drain(late, 2)) == [b"line", b"result"]
            assert [r.value for r in await drain(late_group, 1)] == [b"line"]
        for reader in (prompt, late, late_group):
            await reader.stop()
    finally:
        await bus.stop()


async def test_a_zero_delay_wakes_deferred_readers_at_once(tmp_path: Path) -> None:
    bus = make_bus(None, tmp_path / "bus", embedded_defer_ms=0)
    await bus.start()
    try:
        await bus.ensure_topics([TopicSpec("lines", 1, compact=False)])
        late = bus.tail(["lines"], from_beginning=False, deferred=["lines"])
        await late.start()
        read = asyncio.create_task(late.fetch(10, 5))
        await asyncio.sleep(0)
        await bus.publish("lines", b"k", b"line")
        await asyncio.sleep(0)  # one step, as a prompt reader: not a timer's, however short
        assert read.done() and [r.value for r in read.result()] == [b"line"]
    finally:
        await bus.stop()


def test_the_embedded_delay_setting_reaches_the_bus_and_is_bounded(tmp_path: Path) -> None:
    env = {"INFERQ_DATA_DIR": str(tmp_path / "bus")}
    assert BusSettings.from_env(env).embedded_defer_ms == 2
    bus = bus_for(BusSettings.from_env({**env, "INFERQ_EMBEDDED_DEFER_MS": "7"}), "test")
    assert isinstance(bus, EmbeddedBus) and bus.defer_s == 0.007
    with pytest.raises(SettingError, match="INFERQ_EMBEDDED_DEFER_MS=5000 must be at most"):
        BusSettings.from_env({**env, "INFERQ_EMBEDDED_DEFER_MS": "5000"})


async def test_a_background_wait_shorter_than_the_fetch_wait_is_raised_to_it(
    tmp_path: Path,
) -> None:
    # No broker needed: the consumer is only built, never started.
    bus = make_bus("127.0.0.1:9", tmp_path / "bus", fetch_max_wait_ms=500,
                   background_fetch_wait_ms=100)
    assert isinstance(bus, KafkaBus)
    assert bus.tail(["t"], background=True).fetch_max_wait_ms == 500


def test_the_linger_setting_reaches_the_kafka_producer_options(tmp_path: Path) -> None:
    # No broker needed: the bus is only built, never started.
    settings = BusSettings.from_env({"INFERQ_KAFKA_BOOTSTRAP": "127.0.0.1:9",
                                     "INFERQ_KAFKA_LINGER_MS": "3",
                                     "INFERQ_DATA_DIR": str(tmp_path / "bus")})
    bus = bus_for(settings, "test")
    assert isinstance(bus, KafkaBus)
    assert bus.options.linger_ms == 3
