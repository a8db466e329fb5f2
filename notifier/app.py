"""A notifier process: the Notifier's streams, plus health and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from bus.factory import bus_for
from bus.topics import TopicNames
from notifier.service import Notifier
from notifier.settings import NotifierSettings
from obs.health import ops_app


def create_app(settings: NotifierSettings) -> Starlette:
    registry = CollectorRegistry()
    bus = bus_for(settings.bus, "inferq-notifier")
    notifier = Notifier(settings, bus, registry)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await bus.start()
        try:
            topics = TopicNames(settings.bus.topic_prefix)
            await bus.ensure_topics(topics.specs(settings.bus.partitions))
            await notifier.start()
            yield
            await notifier.stop()
        finally:
            await bus.stop()

    async def ready() -> bool:
        return notifier.registry.ready and notifier.caught_up.is_set() and await bus.healthy()

    app = ops_app(registry, ready, lifespan)
    # The same routes `inferq up` serves on its one port.
    app.router.routes.extend(notifier.routes())
    return app
