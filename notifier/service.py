"""The notifier: follows lifecycle events and results of every partition.

For now it counts what passes and keeps the newest event per subtask; SSE streams and
webhook delivery build on this loop (issue 3).
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import CollectorRegistry, Counter

from bus.base import Bus, Tail
from bus.topics import TopicNames
from notifier.settings import NotifierSettings
from obs.tracing import log_fields

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, settings: NotifierSettings, bus: Bus,
                 metrics: CollectorRegistry | None = None) -> None:
        self._bus = bus
        self._topics = TopicNames(settings.bus.topic_prefix)
        self._seen = Counter("inferq_notifier_records", "records seen by topic", ["topic"],
                             registry=metrics or CollectorRegistry())
        self._tail: Tail | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._tail = self._bus.tail([self._topics.events, self._topics.results],
                                    from_beginning=False)
        await self._tail.start()
        self._task = asyncio.create_task(self._run(), name="notifier-tail")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._tail is not None:
            await self._tail.stop()

    async def _run(self) -> None:
        assert self._tail is not None
        while True:
            for rec in await self._tail.fetch(1000, 1.0):
                role = rec.topic.removeprefix(self._topics.prefix)
                self._seen.labels(role).inc()
                log.debug("%s record", role, extra={
                    "subtask_id": (rec.key or b"").decode("utf-8", "replace"), "topic": role,
                    **log_fields(rec.header("traceparent"))})
