"""The health/metrics app that runner and notifier processes serve."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from obs.metrics import metrics_endpoint
from obs.process_metrics import register_process_metrics


def ops_app(
    registry: CollectorRegistry,
    ready: Callable[[], Awaitable[bool]],
    lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]],
) -> Starlette:
    register_process_metrics(registry)

    async def live(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        ok = await ready()
        return JSONResponse({"status": "ok" if ok else "starting"}, 200 if ok else 503)

    return Starlette(
        routes=[
            Route("/healthz", live),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint(registry)),
        ],
        lifespan=lifespan,
    )



