"""Contiguous commit tracking.

Records of one partition may finish out of order (batches, retries). The offset that
may be committed is the first one not yet handled: committing past a record still in
flight would lose it if this member died. This tracker keeps, per partition, the
offsets handed out in order and advances the commit point only over a handled prefix.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable

from bus.base import GroupConsumer, TopicPartitionKey


class _PartitionOffsets:
    __slots__ = ("pending", "done", "committable")

    def __init__(self) -> None:
        self.pending: deque[int] = deque()
        self.done: set[int] = set()
        self.committable: int | None = None


class OffsetTracker:
    def __init__(self) -> None:
        self._parts: dict[TopicPartitionKey, _PartitionOffsets] = {}
        self._dirty: set[TopicPartitionKey] = set()

    def started(self, tp: TopicPartitionKey, offset: int) -> None:
        """A record was handed out; offsets of one partition arrive in order."""
        part = self._parts.get(tp)
        if part is None:  # not setdefault: that would build a throwaway every record
            part = self._parts[tp] = _PartitionOffsets()
        part.pending.append(offset)

    def finished(self, tp: TopicPartitionKey, offset: int) -> None:
        part = self._parts.get(tp)
        if part is None:  # partition revoked meanwhile: another member redoes it
            return
        part.done.add(offset)
        while part.pending and part.pending[0] in part.done:
            head = part.pending.popleft()
            part.done.discard(head)
            part.committable = head + 1
            self._dirty.add(tp)

    def take_commits(self) -> dict[TopicPartitionKey, int]:
        """Offsets that advanced since the last call (next offset to read)."""
        out: dict[TopicPartitionKey, int] = {}
        for tp in self._dirty:
            part = self._parts.get(tp)
            if part is not None and part.committable is not None:
                out[tp] = part.committable
        self._dirty.clear()
        return out

    def forget(self, tps: Iterable[TopicPartitionKey]) -> None:
        for tp in tps:
            self._parts.pop(tp, None)
            self._dirty.discard(tp)

    def in_flight(self) -> int:
        return sum(len(p.pending) for p in self._parts.values())


class Committer:
    """A group consumer's commits: the tracker, and a background loop that commits the
    contiguous handled prefix whenever it advanced (bursts coalesce into one commit)."""

    def __init__(self) -> None:
        self.tracker = OffsetTracker()
        self._wanted = asyncio.Event()
        self._consumer: GroupConsumer | None = None

    def attach(self, consumer: GroupConsumer) -> None:
        """Commit for ``consumer``; partitions it loses are forgotten, not committed."""
        self._consumer = consumer
        consumer.on_revoked(self.tracker.forget)

    def started(self, tp: TopicPartitionKey, offset: int) -> None:
        self.tracker.started(tp, offset)

    def finished(self, tp: TopicPartitionKey, offset: int) -> None:
        self.tracker.finished(tp, offset)
        self._wanted.set()

    async def commit_now(self) -> None:
        offsets = self.tracker.take_commits()
        if offsets and self._consumer is not None:
            await self._consumer.commit(offsets)

    async def run(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            await self.commit_now()
