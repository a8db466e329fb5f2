"""The notifier: lifecycle streams and webhook delivery.

Two loops. A tail reads every partition of ``events`` and ``results`` from the
beginning into the event book (every replica holds every stream; bounded LRU), which
SSE subscribers follow. A consumer group on ``results`` delivers webhooks and commits
only finished deliveries (``webhooks``). The registry view authenticates streams and
holds the webhook signing secrets.
"""

from __future__ import annotations

import asyncio
import logging

import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge
from starlette.routing import Route

from bus.base import Bus, Tail
from bus.registry_view import RegistryView
from bus.topics import TopicNames
from notifier.book import EventBook
from notifier.deliveries import DeliveryLog
from notifier.settings import NotifierSettings
from notifier.streams import Streams
from notifier.webhooks import Deliverer
from obs.tracing import log_fields
from schemas.messages import event_decoder, result_decoder

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, settings: NotifierSettings, bus: Bus,
                 metrics: CollectorRegistry | None = None) -> None:
        metrics = metrics or CollectorRegistry()
        self._bus = bus
        self._topics = TopicNames(settings.bus.topic_prefix)
        self._seen = Counter("inferq_notifier_records", "records seen by topic", ["topic"],
                             registry=metrics)
        self._seen_events = self._seen.labels("events")
        self._seen_results = self._seen.labels("results")
        # Not in the background: webhook secrets, URLs disabled after a 410 and tasks for
        # streams are written by ingest (or by this notifier) just before results need them.
        self.registry = RegistryView(bus, self._topics.registry, background=False)
        self.book = EventBook(settings.book_capacity, settings.book_bytes)
        Gauge("inferq_notifier_book_subtasks", "subtasks the event book holds",
              registry=metrics).set_function(lambda: len(self.book))
        Gauge("inferq_notifier_book_bytes", "what the event book charges them "
              "(INFERQ_NOTIFIER_BOOK_BYTES bounds it)",
              registry=metrics).set_function(lambda: self.book.held_bytes)
        self.deliveries = DeliveryLog(settings.book_capacity)
        self.streams = Streams(settings, self.book, self.registry, self.deliveries)
        self._deliverer = Deliverer(settings, bus, self.registry, self.deliveries, metrics)
        self._tail: Tail | None = None
        self._task: asyncio.Task[None] | None = None
        self.caught_up = asyncio.Event()

    def routes(self) -> list[Route]:
        """SSE streams and the deliveries list, for whichever app serves them."""
        return self.streams.routes()

    async def __aenter__(self) -> Notifier:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        await self.registry.start()
        # Nobody's answer waits on the book: on the embedded bus it reads after the
        # request path, in batches (``Bus.tail``'s ``deferred``).
        topics = [self._topics.events, self._topics.results]
        self._tail = self._bus.tail(topics, from_beginning=True, deferred=topics)
        await self._tail.start()
        self._task = asyncio.create_task(self._run(), name="notifier-tail")
        await self._deliverer.start()

    async def stop(self) -> None:
        self.streams.closing.set()
        await self._deliverer.stop()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._tail is not None:
            await self._tail.stop()
        await self.registry.stop()

    async def _run(self) -> None:
        assert self._tail is not None
        while True:
            if self._tail.caught_up():
                self.caught_up.set()
            events_topic = self._topics.events
            records = await self._tail.fetch(1000, 0.5)
            # After the fetch, which may wait: a level raised meanwhile holds for these.
            debug = log.isEnabledFor(logging.DEBUG)
            events = 0
            for rec in records:
                is_event = rec.topic == events_topic
                events += is_event
                if debug:  # building the fields costs more than the rest of this loop
                    role = "events" if is_event else "results"
                    log.debug("%s record", role, extra={
                        "subtask_id": (rec.key or b"").decode("utf-8", "replace"),
                        "topic": role, **log_fields(rec.header("traceparent"))})
                if rec.value is None:
                    continue
                try:
                    if is_event:
                        self.book.add_event(event_decoder.decode(rec.value))
                    else:
                        self.book.add_result(result_decoder.decode(rec.value))
                except msgspec.DecodeError as exc:
                    log.error("skipping undecodable %s record at offset %d: %s",
                              "event" if is_event else "result", rec.offset, exc)
            if records:  # counted once a fetch, not once a record
                if events:
                    self._seen_events.inc(events)
                if len(records) > events:
                    self._seen_results.inc(len(records) - events)
