"""The runner's side of the ``control`` topic: cancels and engine commands.

Every runner tails all of ``control`` from the beginning (one partition, a day's
retention). A ``Cancel`` is remembered until the request's deadline, because the
request may reach this runner later (or after a restart); the runner holding it is
told at once (``on_cancel``). An ``EngineCommand`` for this runner is acted on only if
it was issued after the runner started: replaying history must not drain it again.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

import msgspec

from bus.base import Bus, Record
from bus.follower import Follower
from schemas.messages import Cancel, EngineCommand, control_decoder

log = logging.getLogger(__name__)

#: Cancels remembered at most; the oldest are dropped first.
MAX_CANCELS = 100_000


class ControlListener:
    def __init__(self, bus: Bus, topic: str, runner_id: str, *,
                 on_cancel: Callable[[str], object],
                 on_command: Callable[[EngineCommand], None]) -> None:
        self._bus = bus
        self._topic = topic
        self._runner_id = runner_id
        self._on_cancel = on_cancel
        self._on_command = on_command
        self._cancelled: OrderedDict[str, int] = OrderedDict()
        self._follower = Follower(bus, [topic], self._apply, name="control")
        self._started_ms = 0

    def is_cancelled(self, subtask_id: str) -> bool:
        return subtask_id in self._cancelled

    async def start(self) -> None:
        self._started_ms = int(time.time() * 1000)
        await self._follower.start()

    async def stop(self) -> None:
        await self._follower.stop()

    def _apply(self, rec: Record) -> None:
        if rec.value is None:
            return
        try:
            msg = control_decoder.decode(rec.value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.error("skipping undecodable control message at %d: %s", rec.offset, exc)
            return
        if isinstance(msg, Cancel):
            self._cancel(msg)
        elif msg.runner_id == self._runner_id and (self._follower.caught_up.is_set()
                                                   or msg.at_ms >= self._started_ms):
            log.info("engine command %s", msg.action, extra={"runner_id": self._runner_id})
            self._on_command(msg)

    def _cancel(self, msg: Cancel) -> None:
        now = int(time.time() * 1000)
        if msg.deadline_ms and msg.deadline_ms < now:
            return  # its request has expired anyway
        self._cancelled[msg.subtask_id] = msg.deadline_ms
        while self._cancelled and len(self._cancelled) > MAX_CANCELS:
            self._cancelled.popitem(last=False)
        # Forget cancels whose requests can no longer run (they are in deadline order
        # closely enough: all share the ingest deadline setting).
        while self._cancelled:
            sid, deadline = next(iter(self._cancelled.items()))
            if not deadline or deadline >= now:
                break
            self._cancelled.popitem(last=False)
        self._on_cancel(msg.subtask_id)
