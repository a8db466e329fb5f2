"""The result book and the sync waiter.

Every ingest replica tails every partition of the results topic from the beginning, so
any replica can answer ``GET /subtasks/{id}`` and the one holding a synchronous call
finds its result whichever runner produced it. The first final result of a subtask
wins; a redelivered request's second result is ignored. The book is bounded: the
oldest results are forgotten past ``capacity`` (they stay on the topic).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

import msgspec

from bus.base import Bus, Record
from bus.follower import Follower
from ingest.errors import Overloaded
from schemas.messages import SubtaskResult, result_decoder

log = logging.getLogger(__name__)


class ResultBook:
    def __init__(self, bus: Bus, topic: str, *, capacity: int, max_waiters: int) -> None:
        self._bus = bus
        self._topic = topic
        self._capacity = capacity
        self._max_waiters = max_waiters
        self._results: OrderedDict[str, SubtaskResult] = OrderedDict()
        self._waiters: dict[str, asyncio.Future[SubtaskResult]] = {}
        #: Extra watchers that do not own the sync waiter (a cancel awaiting its result).
        self._watchers: dict[str, list[asyncio.Future[SubtaskResult]]] = {}
        # On the request path: a synchronous call waits for this view, so it follows
        # with the short fetch wait, not in the background.
        self._follower = Follower(bus, [topic], self._apply, name="results",
                                  background=False)
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
        self._results[sid] = result
        if len(self._results) > self._capacity:
            self._results.popitem(last=False)
        fut = self._waiters.pop(sid, None)
        if fut is not None and not fut.done():
            fut.set_result(result)
        for watcher in self._watchers.pop(sid, ()):
            if not watcher.done():
                watcher.set_result(result)

    def get(self, subtask_id: str) -> SubtaskResult | None:
        return self._results.get(subtask_id)

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
        result = self._results.get(subtask_id)
        if result is not None:
            return result
        if sum(len(w) for w in self._watchers.values()) >= self._max_waiters:
            raise Overloaded("too many requests waiting for results; retry shortly")
        fut: asyncio.Future[SubtaskResult] = asyncio.get_running_loop().create_future()
        self._watchers.setdefault(subtask_id, []).append(fut)
        try:
            return await asyncio.wait_for(fut, timeout_s)
        except TimeoutError:
            return self._results.get(subtask_id)
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
            return self._results.get(subtask_id)
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
