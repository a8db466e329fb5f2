"""Following topics in the background: the loop every replayed view shares.

A view (registry, results, runner heartbeats, lifecycle events) hands ``Follower`` its
topics and a function applied to each record. The follower owns the tail and the task
(started and stopped with the view), sets ``caught_up`` once every record that existed
at start has been applied, and keeps going with new records after that.

Views follow in the background (``Bus.tail(background=True)``) unless they say
otherwise: only what a client reads right after its request (the results book, which
answers synchronous calls, and the lifecycle lines) needs the short fetch wait, and
every idle follower with it costs the broker and this process a fetch every few
milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Mapping, Sequence

from bus.base import Bus, Record, Tail

log = logging.getLogger(__name__)


def by_topic(handlers: Mapping[str, Callable[[Record], None]]) -> Callable[[Record], None]:
    """One ``apply`` for views that share a follower: each record goes to its topic's."""
    if len(handlers) == 1:
        return next(iter(handlers.values()))
    return lambda rec: handlers[rec.topic](rec)


class Follower:
    def __init__(
        self,
        bus: Bus,
        topics: Sequence[str],
        apply: Callable[[Record], None],
        *,
        name: str,
        from_beginning: bool = True,
        after_batch: Callable[[], None] | None = None,
        poll_s: float = 0.5,
        background: bool = True,
        deferred: Collection[str] = (),
    ) -> None:
        self._bus = bus
        self._deferred = tuple(deferred)
        self._topics = list(topics)
        self._apply = apply
        self._after_batch = after_batch
        self._name = name
        self._from_beginning = from_beginning
        self._poll_s = poll_s
        self._background = background
        self._tail: Tail | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.caught_up = asyncio.Event()

    async def start(self) -> None:
        self._tail = self._bus.tail(self._topics, from_beginning=self._from_beginning,
                                    background=self._background, deferred=self._deferred)
        await self._tail.start()
        self._task = asyncio.create_task(self._run(), name=f"{self._name}-follower")

    async def stop(self) -> None:
        # The flag as well as the cancel: Python 3.11's wait_for can swallow a cancel
        # that lands just as data arrives, and the loop must end all the same.
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._tail is not None:
            await self._tail.stop()

    async def _run(self) -> None:
        assert self._tail is not None
        tail = self._tail
        while not self._stopping:
            if tail.caught_up():
                self.caught_up.set()
            records = await tail.fetch(1000, self._poll_s)
            for rec in records:
                try:
                    self._apply(rec)
                except Exception:  # one bad record must not stop the view
                    log.exception("%s: record at %s:%d not applied", self._name, rec.topic,
                                  rec.offset)
            if records and self._after_batch is not None:
                self._after_batch()
