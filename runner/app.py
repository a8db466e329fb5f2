"""A runner process: the Runner plus its health and metrics endpoints."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from bus.factory import bus_for
from obs.health import ops_app
from runner.service import Runner
from runner.settings import RunnerSettings


def create_app(settings: RunnerSettings) -> Starlette:
    registry = CollectorRegistry()
    bus = bus_for(settings.bus, f"inferq-runner-{settings.runner_id}")
    runner = Runner(settings, bus, registry)
    # A drain/stop command ends the process the way SIGTERM does: the server shuts
    # down, the lifespan drains the runner, the process exits 0.
    runner.on_exit_requested = lambda: signal.raise_signal(signal.SIGTERM)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await bus.start()
        try:
            async with runner:
                yield
        finally:
            await bus.stop()

    async def ready() -> bool:
        return runner.started.is_set() and await bus.healthy()

    return ops_app(registry, ready, lifespan)
