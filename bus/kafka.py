"""The Kafka bus (aiokafka).

``fetch_max_wait_ms`` is a setting because brokers differ: Apache Kafka answers a
parked fetch as soon as data arrives, so a long wait costs nothing; the Tansu test
broker only re-checks at fractions of the wait, so every hop costs up to half of it.

That short wait is for the request path (runners' requests, ingest's results and
lifecycle lines, the notifier's registry). An idle consumer fetches again every time a
wait ends: on Tansu each one at 5 ms costs about a tenth of a core in the broker and as
much in its own process, so background tails (ingest's registry, heartbeats, control)
park for ``background_fetch_wait_ms``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from bus.base import BusError, Headers, Record, TopicPartitionKey
from bus.topics import TopicSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KafkaOptions:
    bootstrap: str
    fetch_max_wait_ms: int = 5
    #: Fetch wait of background tails; never shorter than ``fetch_max_wait_ms``.
    background_fetch_wait_ms: int = 100
    #: Producer linger (``INFERQ_KAFKA_LINGER_MS``): 0 keeps the request path's latency;
    #: a few ms batches more under load.
    linger_ms: int = 0
    max_message_bytes: int = 16 * 1024 * 1024
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000
    max_poll_interval_ms: int = 300_000
    client_id: str = "inferq"
    #: Cap on publishes not yet acknowledged (``publish_soon``); beyond it we wait.
    max_unacked: int = 10_000


def _record(m: object) -> Record:
    return Record(
        topic=m.topic,  # type: ignore[attr-defined]
        partition=m.partition,  # type: ignore[attr-defined]
        offset=m.offset,  # type: ignore[attr-defined]
        key=m.key,  # type: ignore[attr-defined]
        value=m.value,  # type: ignore[attr-defined]
        headers=tuple(m.headers or ()),  # type: ignore[attr-defined]
        timestamp_ms=m.timestamp,  # type: ignore[attr-defined]
    )


class KafkaBus:
    def __init__(self, options: KafkaOptions) -> None:
        self.options = options
        self._producer: AIOKafkaProducer | None = None
        self._unacked: set[asyncio.Future[None]] = set()
        self._soon_errors = 0

    async def start(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.options.bootstrap,
            client_id=self.options.client_id,
            acks="all",
            linger_ms=self.options.linger_ms,
            max_request_size=self.options.max_message_bytes,
            request_timeout_ms=30_000,
        )
        try:
            await producer.start()
        except KafkaError as exc:
            await producer.stop()
            raise BusError(
                f"cannot reach Kafka at {self.options.bootstrap}: {exc}"
            ) from exc
        self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            if self._unacked:
                await asyncio.wait(self._unacked, timeout=10)
            await self._producer.stop()
            self._producer = None

    async def healthy(self) -> bool:
        p = self._producer
        if p is None:
            return False
        return bool(p.client.cluster.brokers())

    async def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.options.bootstrap, client_id=self.options.client_id
        )
        try:
            await admin.start()
        except KafkaError as exc:
            raise BusError(f"cannot reach Kafka at {self.options.bootstrap}: {exc}") from exc
        try:
            existing = set(await admin.list_topics())
            new = [
                NewTopic(s.name, s.partitions, 1, topic_configs=s.configs())
                for s in specs
                if s.name not in existing
            ]
            if new:
                try:
                    await admin.create_topics(new)
                except TopicAlreadyExistsError:
                    pass  # another process created them first
        finally:
            await admin.close()

    def _require(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise BusError("the Kafka bus is not started")
        return self._producer

    async def publish(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers = ()
    ) -> None:
        try:
            await self._require().send_and_wait(topic, value, key=key, headers=list(headers))
        except KafkaError as exc:
            raise BusError(f"publish to {topic} failed: {exc}") from exc

    def publish_soon(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers = ()
    ) -> None:
        if len(self._unacked) >= self.options.max_unacked:
            raise BusError("too many unacknowledged publishes")
        task = asyncio.ensure_future(self.publish(topic, key, value, headers))
        self._unacked.add(task)
        task.add_done_callback(self._soon_done)

    def _soon_done(self, task: asyncio.Future[None]) -> None:
        self._unacked.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._soon_errors += 1
            log.warning("background publish failed: %s", task.exception())

    def _consumer(self, group_id: str | None, fetch_max_wait_ms: int) -> AIOKafkaConsumer:
        o = self.options
        return AIOKafkaConsumer(
            bootstrap_servers=o.bootstrap,
            client_id=o.client_id,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=fetch_max_wait_ms,
            max_partition_fetch_bytes=o.max_message_bytes,
            fetch_max_bytes=max(o.max_message_bytes, 52_428_800),
            session_timeout_ms=o.session_timeout_ms,
            heartbeat_interval_ms=o.heartbeat_interval_ms,
            max_poll_interval_ms=o.max_poll_interval_ms,
        )

    def group_consumer(self, topics: Sequence[str], group_id: str, *,
                       deferred: Collection[str] = ()) -> KafkaGroupConsumer:
        return KafkaGroupConsumer(self._consumer(group_id, self.options.fetch_max_wait_ms),
                                  list(topics))

    def tail(self, topics: Sequence[str], *, from_beginning: bool = True,
             background: bool = False, deferred: Collection[str] = ()) -> KafkaTail:
        o = self.options
        wait = (max(o.background_fetch_wait_ms, o.fetch_max_wait_ms) if background
                else o.fetch_max_wait_ms)
        return KafkaTail(self._consumer(None, wait), list(topics), from_beginning, wait)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.callbacks: list[Callable[[Iterable[TopicPartitionKey]], None]] = []

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        tps = [(tp.topic, tp.partition) for tp in revoked]
        for cb in self.callbacks:
            cb(tps)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        return None


class KafkaGroupConsumer:
    def __init__(self, consumer: AIOKafkaConsumer, topics: list[str]) -> None:
        self._c = consumer
        self._topics = topics
        self._listener = _Listener()
        self._paused = False
        # Next offset per partition, from what fetch returned (for ``lag``).
        self._next: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        self._c.subscribe(self._topics, listener=self._listener)
        try:
            await self._c.start()
        except KafkaError as exc:
            await self._c.stop()
            raise BusError(f"consumer cannot start: {exc}") from exc

    async def stop(self) -> None:
        await self._c.stop()  # leaves the group

    async def fetch(self, max_records: int, timeout_s: float) -> list[Record]:
        if self._paused:
            # Keep the group membership alive: getmany on paused partitions returns
            # nothing but drives the coordinator.
            self._c.pause(*self._c.assignment())
        batches = await self._c.getmany(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        for tp, msgs in batches.items():
            if msgs:
                self._next[tp] = msgs[-1].offset + 1
        return [_record(m) for msgs in batches.values() for m in msgs]

    async def commit(self, offsets: Mapping[TopicPartitionKey, int]) -> None:
        assigned = self._c.assignment()
        tps = {TopicPartition(t, p): o for (t, p), o in offsets.items()}
        tps = {tp: o for tp, o in tps.items() if tp in assigned}
        if tps:
            try:
                await self._c.commit(tps)
            except KafkaError as exc:
                # Lost the partition in a rebalance: its new owner redoes the tail.
                log.warning("commit failed: %s", exc)

    def pause(self) -> None:
        self._paused = True
        self._c.pause(*self._c.assignment())

    def resume(self) -> None:
        self._paused = False
        self._c.resume(*self._c.assignment())

    def lag(self) -> int:
        # The high watermark comes with each fetch response, so both numbers are as of
        # the last fetch; a partition that returned nothing yet counts as caught up.
        total = 0
        for tp in self._c.assignment():
            high = self._c.highwater(tp)
            if high is not None:
                total += max(0, high - self._next.get(tp, high))
        return total

    def on_revoked(self, callback: Callable[[Iterable[TopicPartitionKey]], None]) -> None:
        self._listener.callbacks.append(callback)


class KafkaTail:
    def __init__(self, consumer: AIOKafkaConsumer, topics: list[str], from_beginning: bool,
                 fetch_max_wait_ms: int) -> None:
        #: How long each of this tail's fetches parks on the broker.
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self._c = consumer
        self._topics = topics
        self._from_beginning = from_beginning
        self._end_at_start: dict[TopicPartition, int] = {}
        self._next: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        try:
            await self._c.start()
        except KafkaError as exc:
            await self._c.stop()
            raise BusError(f"consumer cannot start: {exc}") from exc
        tps: list[TopicPartition] = []
        for topic in self._topics:
            parts = self._c.partitions_for_topic(topic)
            if not parts:
                await self._c._client.force_metadata_update()
                parts = self._c.partitions_for_topic(topic) or {0}
            tps.extend(TopicPartition(topic, p) for p in sorted(parts))
        self._c.assign(tps)
        self._end_at_start = await self._c.end_offsets(tps)
        if self._from_beginning:
            self._next = dict(await self._c.beginning_offsets(tps))
            await self._c.seek_to_beginning(*tps)
        else:
            self._next = dict(self._end_at_start)
            for tp, end in self._end_at_start.items():
                self._c.seek(tp, end)

    async def stop(self) -> None:
        await self._c.stop()

    def caught_up(self) -> bool:
        return all(self._next.get(tp, 0) >= end for tp, end in self._end_at_start.items())

    async def fetch(self, max_records: int, timeout_s: float) -> list[Record]:
        batches = await self._c.getmany(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        out: list[Record] = []
        for tp, msgs in batches.items():
            if msgs:
                self._next[tp] = msgs[-1].offset + 1
                out.extend(_record(m) for m in msgs)
        return out
