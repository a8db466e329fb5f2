"""The bus interface that ingest, runner and notifier are written against."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Protocol

import msgspec

from bus.topics import TopicSpec

Headers = tuple[tuple[str, bytes], ...]
TopicPartitionKey = tuple[str, int]


class Record(msgspec.Struct, frozen=True, gc=False):
    """One record as a bus hands it out. Not tracked by the cyclic GC (``gc=False``): the
    embedded bus keeps up to hundreds of thousands of them, and holding only scalars,
    bytes and tuples they can be part of no cycle (``inferq.serve.GC_THRESHOLDS``)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    timestamp_ms: int = 0

    def header(self, name: str) -> bytes | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None


class BusError(RuntimeError):
    """The bus cannot be reached or refused an operation."""

    retriable = True


class GroupConsumer(Protocol):
    """A member of a consumer group: records are shared out among the members."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def fetch(self, max_records: int, timeout_s: float) -> list[Record]: ...
    async def commit(self, offsets: Mapping[TopicPartitionKey, int]) -> None:
        """Commit ``offsets`` (the next offset to read, per partition)."""
        ...

    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def lag(self) -> int:
        """Records on this member's partitions not yet fetched (as of the last fetch)."""
        ...

    def on_revoked(self, callback: Callable[[Iterable[TopicPartitionKey]], None]) -> None:
        """Call ``callback`` with the partitions this member loses at a rebalance."""
        ...


class Tail(Protocol):
    """Reads every partition of its topics, outside any group."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def fetch(self, max_records: int, timeout_s: float) -> list[Record]: ...
    def caught_up(self) -> bool:
        """True once every record that existed at ``start()`` has been fetched."""
        ...


class Bus(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def ensure_topics(self, specs: Sequence[TopicSpec]) -> None: ...
    async def publish(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers = ()
    ) -> None:
        """Publish one record and return once the bus has acknowledged it."""
        ...

    def publish_soon(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers = ()
    ) -> None:
        """Publish without waiting for the acknowledgement (lifecycle events)."""
        ...

    def group_consumer(self, topics: Sequence[str], group_id: str, *,
                       deferred: Collection[str] = ()) -> GroupConsumer:
        """A member of ``group_id`` reading ``topics``; ``deferred`` as for ``tail``."""
        ...

    def tail(self, topics: Sequence[str], *, from_beginning: bool = True,
             background: bool = False, deferred: Collection[str] = ()) -> Tail:
        """Follow ``topics`` outside any group. A ``background`` tail feeds a view off the
        request path: on Kafka its fetches park for the longer background wait, so an
        idle one costs the broker and this process a fetch per that wait, not per
        ``fetch_max_wait_ms``; new records may reach it that much later on brokers that
        only re-check parked fetches (Apache Kafka answers them as data arrives).

        ``deferred`` names those of ``topics`` whose new records this reader need not
        see at once (streams, webhooks, lifecycle lines: nobody's answer waits on
        them). The embedded bus wakes it for them a short delay later, one wake-up for
        every such reader, so in the one process a request's own path (a runner taking
        it, ingest reading its result) runs first and these read in batches. On Kafka
        every fetch already waits up to ``fetch_max_wait_ms``; it changes nothing there."""
        ...
    async def healthy(self) -> bool: ...
