"""What ingest knows of each subtask's lifecycle before its result: the events topic.

Every replica tails every partition of ``events`` (as it does ``results``), so any
replica can say a subtask submitted elsewhere is queued or running, and list its
lifecycle lines. Bounded: the oldest subtasks are forgotten past ``capacity``, and each
keeps at most ``MAX_LINES`` lines.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import msgspec

from bus.base import Bus, Record
from bus.follower import Follower
from schemas.messages import SubtaskEvent, event_decoder

log = logging.getLogger(__name__)

MAX_LINES = 50
_FINAL_KINDS = frozenset({"succeeded", "failed", "cancelled", "expired"})


class Lifecycle(msgspec.Struct, gc=False):
    """One subtask's lifecycle. Not tracked by the cyclic GC: the view keeps one for each
    of up to hundreds of thousands of subtasks, and holding only strings, numbers and a
    tuple of (int, str) lines it can be part of no cycle. The lines are a tuple, replaced
    on each line, not a list: a list stays tracked as long as its subtask is kept, and
    every collection walks it (one object a request); a tuple of tuples of numbers and
    strings is untracked by the first two collections that see it."""

    subtask_id: str
    task_id: str
    account_id: str
    created_at_ms: int = 0
    updated_at_ms: int = 0
    running: bool = False
    #: The metadata JSON a ``POST /run`` attached to its queued event.
    metadata: str = ""
    lines: tuple[tuple[int, str], ...] = ()


class LifecycleView:
    def __init__(self, bus: Bus, topic: str, *, capacity: int, follow: bool = True) -> None:
        """``follow=False``: another tail feeds ``apply`` (ingest follows events on the
        result book's tail); ``start`` and ``stop`` then do nothing."""
        self._bus = bus
        self._capacity = capacity
        self._subtasks: OrderedDict[str, Lifecycle] = OrderedDict()
        # Not in the background: a client that got its result asks for the subtask's
        # lines next and must find the runner's `running` line, which the runner
        # published with (or before) that result.
        self._follower = Follower(bus, [topic], self.apply, name="lifecycle",
                                  background=False) if follow else None

    async def start(self) -> None:
        if self._follower is not None:
            await self._follower.start()

    async def stop(self) -> None:
        if self._follower is not None:
            await self._follower.stop()

    def apply(self, rec: Record) -> None:
        if rec.value is None:
            return
        try:
            self.add(event_decoder.decode(rec.value))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.error("skipping undecodable event at %s:%d: %s", rec.topic, rec.offset, exc)

    def add(self, ev: SubtaskEvent) -> None:
        if ev.kind in _FINAL_KINDS:
            return  # the results record gives the final state and line (and its outputs)
        lc = self._subtasks.get(ev.subtask_id)
        if lc is None:
            lc = self._subtasks[ev.subtask_id] = Lifecycle(ev.subtask_id, ev.task_id,
                                                           ev.account_id)
            if len(self._subtasks) > self._capacity:
                self._subtasks.popitem(last=False)
        if ev.kind == "queued":
            if lc.created_at_ms == 0 or ev.at_ms < lc.created_at_ms:
                lc.created_at_ms = ev.at_ms
            if ev.message and not lc.metadata:
                lc.metadata = ev.message
            line = "queued"
        elif ev.kind == "running":
            lc.running = True
            line = f"running on {ev.message}" if ev.message else "running"
        else:
            line = f"{ev.kind}: {ev.message}" if ev.message else ev.kind
        lc.updated_at_ms = max(lc.updated_at_ms, ev.at_ms)
        if len(lc.lines) < MAX_LINES:
            lc.lines = tuple(sorted((*lc.lines, (ev.at_ms, line))))

    def get(self, subtask_id: str) -> Lifecycle | None:
        return self._subtasks.get(subtask_id)

    def forget(self, subtask_id: str) -> None:
        """Drop a subtask (its result left the result book: its lines must not outlive
        it and show a finished subtask as running)."""
        self._subtasks.pop(subtask_id, None)
