"""Which runners are alive: the last heartbeat of each, from the compacted runners topic.

Runners publish a ``Heartbeat`` every ``INFERQ_HEARTBEAT_S`` seconds and a tombstone when
they stop. A runner counts as alive while it says ``running`` and its last heartbeat is
at most three intervals old, so one or two lost heartbeats do not flap readiness, and a
runner that died without its tombstone drops out within three intervals. Heartbeat
times are the runner's wall clock: hosts need clocks that agree to within an interval.
"""

from __future__ import annotations

import logging
import time

import msgspec

from bus.base import Bus, Record
from bus.follower import Follower
from schemas.messages import Heartbeat, heartbeat_decoder

log = logging.getLogger(__name__)

#: Heartbeats missed before a runner counts as gone.
MISSED_BEATS = 3
#: Runners remembered at most; past it the longest silent are forgotten.
MAX_RUNNERS = 10_000


class RunnersView:
    def __init__(self, bus: Bus, topic: str, *, heartbeat_s: float) -> None:
        self._bus = bus
        self._topic = topic
        self.stale_after_s = MISSED_BEATS * heartbeat_s
        #: The last heartbeat of every runner not yet tombstoned, by runner id.
        self.heartbeats: dict[str, Heartbeat] = {}
        self._follower = Follower(bus, [topic], self._apply, name="runners",
                                  after_batch=self._forget_oldest)

    async def start(self) -> None:
        await self._follower.start()

    async def stop(self) -> None:
        await self._follower.stop()

    def _apply(self, rec: Record) -> None:
        runner_id = (rec.key or b"").decode(errors="replace")
        if rec.value is None:
            self.heartbeats.pop(runner_id, None)
            return
        try:
            self.heartbeats[runner_id] = heartbeat_decoder.decode(rec.value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.error("skipping undecodable heartbeat of %s: %s", runner_id, exc)

    def _forget_oldest(self) -> None:
        if len(self.heartbeats) > MAX_RUNNERS:
            # Runners that died without a tombstone would otherwise pile up forever.
            by_age = sorted(self.heartbeats, key=lambda r: self.heartbeats[r].at_ms)
            for runner_id in by_age[:len(self.heartbeats) - MAX_RUNNERS]:
                del self.heartbeats[runner_id]

    def alive(self, now_ms: int | None = None) -> list[Heartbeat]:
        """Runners taking work now: running, with a recent heartbeat."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        horizon = now - int(self.stale_after_s * 1000)
        return [hb for hb in self.heartbeats.values()
                if hb.state == "running" and hb.at_ms >= horizon]
