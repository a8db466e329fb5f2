"""The result book and the sync waiter.

Every ingest replica tails every partition of the results topic from the beginning, so
any replica can answer ``GET /subtasks/{id}`` and the one holding a synchronous call
finds its result whichever runner produced it. The first final result of a subtask
wins; a redelivered request's second result is ignored.

The book is bounded twice: the oldest results are forgotten once it holds more than
``capacity`` results or more than ``max_bytes`` of them by ``result_size`` (they stay on
the topic). The count alone is no memory bound with large outputs: 200,000 results of
1 MiB each would be 200 GiB in every replica. Waiters and watchers are answered before
anything is forgotten, with the result itself, so even a result larger than the whole
bound reaches its caller. The newest result is never forgotten either, so a read of the
book right after (the tasks API's ``POST /run`` reads it) still finds it unless another
result came in the same moment; the book exceeds ``max_bytes`` by at most that one
result. ``get`` answers None for a forgotten result, as for one not seen yet.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping

import msgspec

from bus.base import Bus, Record
from bus.follower import Follower, by_topic
from ingest.errors import Overloaded
from schemas.messages import SubtaskResult, Succeeded, result_decoder

log = logging.getLogger(__name__)

#: What ``result_size`` adds to each result's data: the decoded structs (the result, its
#: timings, a tensor's name, dtype and shape), its id strings and its slot in the book.
#: Measured with tracemalloc over ``add`` of decoded results (uuid ids, Python 3.11):
#: about 1,050 bytes for a ``Succeeded`` with one empty output, 620 for a ``Failed``;
#: each further output adds about 240 and each string element about 50 more, so many
#: tiny outputs or short strings are undercounted.
ENTRY_OVERHEAD_BYTES = 1024


def result_size(result: SubtaskResult) -> int:
    """The bytes the book charges for ``result``: its output tensors' data (string tensors
    at their UTF-8 size), its error text and ``ENTRY_OVERHEAD_BYTES``."""
    size = ENTRY_OVERHEAD_BYTES
    if isinstance(result, Succeeded):
        for t in result.outputs:
            size += len(t.data)
            if t.strings:
                size += sum(len(v.encode()) for v in t.strings)
    else:
        size += len(result.error.encode())
    return size


class ResultBook:
    def __init__(
        self,
        bus: Bus,
        topic: str,
        *,
        capacity: int,
        max_waiters: int,
        max_bytes: int,
        alongside: Mapping[str, Callable[[Record], None]] | None = None,
    ) -> None:
        self._bus = bus
        self._topic = topic
        self._capacity = capacity
        self._max_bytes = max_bytes
        self._max_waiters = max_waiters
        #: Each result with its ``result_size``, oldest first.
        self._results: OrderedDict[str, tuple[SubtaskResult, int]] = OrderedDict()
        self._bytes = 0
        self._waiters: dict[str, asyncio.Future[SubtaskResult]] = {}
        #: Extra watchers that do not own the sync waiter (a cancel awaiting its result).
        self._watchers: dict[str, list[asyncio.Future[SubtaskResult]]] = {}
        #: Called with a subtask id when its result enters the book / is forgotten.
        self.on_added: Callable[[str], None] | None = None
        self.on_forgotten: Callable[[str], None] | None = None
        # On the request path: a synchronous call waits for this view, so it follows
        # with the short fetch wait, not in the background. ``alongside`` are other
        # topics read right after a result (the lifecycle lines), followed on the same
        # tail: on Kafka every short-wait tail is a fetch per broker every few
        # milliseconds while idle, for the broker and this process alike. Only results
        # wake it at once on the embedded bus: ``alongside`` records are deferred (read
        # with the next result, or the bus's short delay after they land).
        handlers = {topic: self._apply, **(alongside or {})}
        self._follower = Follower(bus, list(handlers), by_topic(handlers), name="results",
                                  background=False, deferred=list(alongside or ()))
        self.caught_up = self._follower.caught_up

    async def start(self) -> None:
        await self._follower.start()

    async def stop(self) -> None:
        await self._follower.stop()
        for fut in self._waiters.values():
            fut.cancel()

    def _apply(self, rec: Record) -> None:
        if rec.value is None:
            return
        try:
            result = result_decoder.decode(rec.value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.error("skipping undecodable result at %s:%d", rec.topic, rec.offset,
                      extra={"error": str(exc)})
            return
        self.add(result)

    def add(self, result: SubtaskResult) -> None:
        sid = result.subtask_id
        if sid in self._results:
            return
        size = result_size(result)
        self._results[sid] = (result, size)
        self._bytes += size
        if self.on_added is not None:
            self.on_added(sid)
        fut = self._waiters.pop(sid, None)
        if fut is not None and not fut.done():
            fut.set_result(result)
        for watcher in self._watchers.pop(sid, ()):
            if not watcher.done():
                watcher.set_result(result)
        # After answering, and never the newest: eviction cannot cost a caller its result.
        while len(self._results) > 1 and (
            len(self._results) > self._capacity or self._bytes > self._max_bytes
        ):
            old_sid, (_, old_size) = self._results.popitem(last=False)
            self._bytes -= old_size
            if self.on_forgotten is not None:
                self.on_forgotten(old_sid)

    def get(self, subtask_id: str) -> SubtaskResult | None:
        entry = self._results.get(subtask_id)
        return None if entry is None else entry[0]

    @property
    def held(self) -> int:
        """Results in the book."""
        return len(self._results)

    @property
    def held_bytes(self) -> int:
        """Their ``result_size`` in all."""
        return self._bytes

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def expect(self, subtask_id: str) -> asyncio.Future[SubtaskResult]:
        """Register a waiter before the request is published, so no result slips by."""
        if len(self._waiters) >= self._max_waiters:
            raise Overloaded("too many requests waiting for results; retry shortly")
        fut: asyncio.Future[SubtaskResult] = asyncio.get_running_loop().create_future()
        self._waiters[subtask_id] = fut
        return fut

    async def watch(self, subtask_id: str, timeout_s: float) -> SubtaskResult | None:
        """The result within ``timeout_s``, else None, beside any sync waiter."""
        result = self.get(subtask_id)
        if result is not None:
            return result
        if sum(len(w) for w in self._watchers.values()) >= self._max_waiters:
            raise Overloaded("too many requests waiting for results; retry shortly")
        fut: asyncio.Future[SubtaskResult] = asyncio.get_running_loop().create_future()
        self._watchers.setdefault(subtask_id, []).append(fut)
        try:
            return await asyncio.wait_for(fut, timeout_s)
        except TimeoutError:
            return self.get(subtask_id)
        finally:
            left = [w for w in self._watchers.get(subtask_id, ()) if w is not fut]
            if left:
                self._watchers[subtask_id] = left
            else:
                self._watchers.pop(subtask_id, None)

    def forget(self, subtask_id: str) -> None:
        fut = self._waiters.pop(subtask_id, None)
        if fut is not None:
            fut.cancel()

    async def wait(
        self, subtask_id: str, fut: asyncio.Future[SubtaskResult], timeout_s: float
    ) -> SubtaskResult | None:
        # A timer that fails the waiter, not ``wait_for(shield(...))``: that wraps every
        # sync call in two extra futures and a task, a sizeable share of a small request.
        timer = asyncio.get_running_loop().call_later(timeout_s, _time_out, fut)
        try:
            return await fut
        except _WaitTimedOut:
            self.forget(subtask_id)
            return self.get(subtask_id)
        except asyncio.CancelledError:
            self.forget(subtask_id)  # the caller went away: nobody waits for it now
            raise
        finally:
            timer.cancel()


class _WaitTimedOut(Exception):
    """Set on a sync waiter whose timeout passed first."""


def _time_out(fut: asyncio.Future[SubtaskResult]) -> None:
    if not fut.done():
        fut.set_exception(_WaitTimedOut())
