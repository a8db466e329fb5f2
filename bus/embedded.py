"""The embedded bus: Kafka's semantics inside one process, for `inferq up` and tests.

Each topic has one partition. A consumer group shares one delivery position among its
members (competing consumers) and keeps a committed offset; after a restart, delivery
resumes from the committed offset, so records handed out but not committed are
delivered again, as Kafka does. Committed offsets are saved at most every 100 ms and
on stop.

A reader waiting for records is woken by the append itself, in the same step, except on
the topics it named ``deferred``: for those it is woken ``defer_s`` later, together with
every other reader so deferred (one timer). Everything runs on one event loop, so
readers that nobody's answer waits for (the SSE book, the webhook deliverer, lifecycle
lines) would otherwise run between each step of every request's path; deferred, they
run after it, a few requests' records at a time (tiny model, one client: p50 -9-10 %).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path

from bus.base import Headers, Record, TopicPartitionKey
from bus.embedded_log import PartitionLog
from bus.topics import TopicSpec

_SAVE_INTERVAL_S = 0.1


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _Group:
    def __init__(self, committed: dict[str, int]) -> None:
        self.committed = committed
        self.position: dict[str, int] = dict(committed)
        self.members = 0


class EmbeddedBus:
    def __init__(
        self,
        data_dir: Path | None,
        *,
        max_records: int = 200_000,
        max_bytes: int = 256 * 1024 * 1024,
        defer_s: float = 0.002,
    ) -> None:
        self._dir = data_dir
        #: How long after a record readers that deferred its topic are woken.
        self.defer_s = defer_s
        self._max_records = max_records
        self._max_bytes = max_bytes
        self._logs: dict[str, PartitionLog] = {}
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        #: Readers to wake ``defer_s`` after a record on a topic they deferred, and
        #: those already due at the pending timer.
        self._deferred_waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._due: set[asyncio.Future[None]] = set()
        self._due_timer: asyncio.TimerHandle | None = None
        self._groups: dict[str, _Group] = {}
        self._saved_groups: dict[str, dict[str, int]] = {}
        self._save_task: asyncio.Task[None] | None = None
        self._dirty = False
        self._started = False

    # lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        if self._dir is not None:
            (self._dir / "topics").mkdir(parents=True, exist_ok=True)
            groups_file = self._dir / "groups.json"
            if groups_file.exists():
                self._saved_groups = json.loads(groups_file.read_text())
        self._started = True

    async def stop(self) -> None:
        if self._save_task is not None:
            self._save_task.cancel()
            try:
                await self._save_task
            except asyncio.CancelledError:
                pass
        self._save_groups()
        if self._due_timer is not None:
            self._due_timer.cancel()
            self._wake_due()
        for log in self._logs.values():
            log.close()
        self._started = False

    async def healthy(self) -> bool:
        return self._started

    async def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        for spec in specs:
            self._log(spec.name, compact=spec.compact)

    def _log(self, topic: str, *, compact: bool = False) -> PartitionLog:
        log = self._logs.get(topic)
        if log is None:
            path = None if self._dir is None else self._dir / "topics" / f"{topic}.log"
            log = PartitionLog(topic, path, compact=compact, max_records=self._max_records,
                               max_bytes=self._max_bytes)
            self._logs[topic] = log
        return log

    # producing -------------------------------------------------------------------
    async def publish(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers = ()
    ) -> None:
        self.publish_soon(topic, key, value, headers)

    def publish_soon(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers = ()
    ) -> None:
        self._log(topic).append(key, value, headers, int(time.time() * 1000))
        for fut in self._waiters.pop(topic, ()):
            if not fut.done():
                fut.set_result(None)
        deferred = self._deferred_waiters.pop(topic, None)
        if deferred:
            self._due |= deferred
            if self._due_timer is None:
                self._due_timer = asyncio.get_running_loop().call_later(self.defer_s,
                                                                        self._wake_due)

    def _wake_due(self) -> None:
        self._due_timer = None
        due, self._due = self._due, set()
        for fut in due:
            if not fut.done():
                fut.set_result(None)

    async def wait_for_data(self, topics: Sequence[str], timeout_s: float,
                            deferred: Collection[str] = ()) -> None:
        """Wait until a record lands on one of ``topics`` (on one of ``deferred``:
        ``defer_s`` after it) or ``timeout_s`` passes."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        for t in topics:
            (self._deferred_waiters if t in deferred else self._waiters).setdefault(
                t, set()).add(fut)
        # A plain future and a timer that completes it, not ``asyncio.wait``: every idle
        # tail waits here once per record it is woken for, and ``asyncio.wait`` (a waiter
        # future, callbacks and a timer of its own) cost 2.5x as much. Not ``wait_for``:
        # on Python 3.11 that swallows a cancel arriving as a publish completes ``fut``.
        # Cancelling the caller cancels ``fut``, so the cancel always propagates.
        timer = loop.call_later(timeout_s, _wake, fut)
        try:
            await fut
        finally:
            timer.cancel()
            for t in topics:
                registered = (self._deferred_waiters if t in deferred else self._waiters).get(t)
                if registered is not None:
                    registered.discard(fut)

    def deferrable(self, topics: Sequence[str], deferred: Collection[str]) -> frozenset[str]:
        """Those of a reader's ``topics`` it asked to defer; none when ``defer_s`` is 0."""
        return frozenset(deferred) & frozenset(topics) if self.defer_s > 0 else frozenset()

    def read(self, topic: str, position: int, max_records: int) -> list[Record]:
        return self._log(topic).read(position, max_records)

    def end_offset(self, topic: str) -> int:
        return self._log(topic).next_offset

    # groups ------------------------------------------------------------------------
    def group(self, group_id: str) -> _Group:
        g = self._groups.get(group_id)
        if g is None:
            g = _Group(dict(self._saved_groups.get(group_id, {})))
            self._groups[group_id] = g
        return g

    def mark_committed(self) -> None:
        self._dirty = True
        if self._dir is not None and self._save_task is None:
            self._save_task = asyncio.get_running_loop().create_task(self._save_loop())

    async def _save_loop(self) -> None:
        while True:
            await asyncio.sleep(_SAVE_INTERVAL_S)
            if self._dirty:
                self._save_groups()

    def _save_groups(self) -> None:
        if self._dir is None or not self._dirty:
            return
        data = dict(self._saved_groups)
        data.update({gid: g.committed for gid, g in self._groups.items()})
        tmp = self._dir / "groups.json.tmp"
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self._dir / "groups.json")
        self._dirty = False

    def group_consumer(self, topics: Sequence[str], group_id: str, *,
                       deferred: Collection[str] = ()) -> EmbeddedGroupConsumer:
        return EmbeddedGroupConsumer(self, list(topics), group_id, deferred)

    def tail(self, topics: Sequence[str], *, from_beginning: bool = True,
             background: bool = False, deferred: Collection[str] = ()) -> EmbeddedTail:
        # Every tail here is woken by the append itself: background or not, idle costs nothing.
        return EmbeddedTail(self, list(topics), from_beginning, deferred)


class EmbeddedGroupConsumer:
    def __init__(self, bus: EmbeddedBus, topics: list[str], group_id: str,
                 deferred: Collection[str]) -> None:
        self._bus = bus
        self._topics = topics
        self._deferred = bus.deferrable(topics, deferred)
        self._group = bus.group(group_id)
        self._paused = False

    async def start(self) -> None:
        self._group.members += 1
        for t in self._topics:
            self._bus._log(t)
            self._group.position.setdefault(t, self._group.committed.get(t, 0))

    async def stop(self) -> None:
        self._group.members -= 1
        if self._group.members == 0:
            # The last member leaving hands undone records back, as a rebalance would.
            self._group.position = dict(self._group.committed)

    async def fetch(self, max_records: int, timeout_s: float) -> list[Record]:
        deadline = time.monotonic() + timeout_s
        while True:
            if not self._paused:
                out: list[Record] = []
                for t in self._topics:
                    recs = self._bus.read(t, self._group.position[t], max_records - len(out))
                    if recs:
                        self._group.position[t] = recs[-1].offset + 1
                        out.extend(recs)
                if out:
                    return out
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            await self._bus.wait_for_data(self._topics, remaining, self._deferred)

    async def commit(self, offsets: Mapping[TopicPartitionKey, int]) -> None:
        for (topic, _), offset in offsets.items():
            if offset > self._group.committed.get(topic, 0):
                self._group.committed[topic] = offset
        self._bus.mark_committed()

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    def lag(self) -> int:
        return sum(max(0, self._bus.end_offset(t) - self._group.position.get(t, 0))
                   for t in self._topics)

    def on_revoked(self, callback: Callable[[Iterable[TopicPartitionKey]], None]) -> None:
        """One process, one group view: partitions are never taken away."""


class EmbeddedTail:
    def __init__(self, bus: EmbeddedBus, topics: list[str], from_beginning: bool,
                 deferred: Collection[str]) -> None:
        self._bus = bus
        self._topics = topics
        self._deferred = bus.deferrable(topics, deferred)
        self._from_beginning = from_beginning
        self._position: dict[str, int] = {}
        self._end_at_start: dict[str, int] = {}

    async def start(self) -> None:
        for t in self._topics:
            end = self._bus.end_offset(t)
            self._end_at_start[t] = end
            self._position[t] = 0 if self._from_beginning else end

    async def stop(self) -> None:
        return None

    def caught_up(self) -> bool:
        return all(self._position[t] >= self._end_at_start[t] for t in self._topics)

    async def fetch(self, max_records: int, timeout_s: float) -> list[Record]:
        deadline = time.monotonic() + timeout_s
        while True:
            out: list[Record] = []
            for t in self._topics:
                recs = self._bus.read(t, self._position[t], max_records - len(out))
                if recs:
                    self._position[t] = recs[-1].offset + 1
                    out.extend(recs)
                elif self._position[t] < self._bus.end_offset(t):
                    self._position[t] = self._bus.end_offset(t)  # skipped a compacted gap
            if out:
                return out
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            await self._bus.wait_for_data(self._topics, remaining, self._deferred)
