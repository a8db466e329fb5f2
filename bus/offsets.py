"""Contiguous commit tracking.

Records of one partition may finish out of order (batches, retries). The offset that
may be committed is the first one not yet handled: committing past a record still in
flight would lose it if this member died. This tracker keeps, per partition, the
offsets handed out in order and advances the commit point only over a handled prefix.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from bus.base import TopicPartitionKey


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
        self._parts.setdefault(tp, _PartitionOffsets()).pending.append(offset)

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
