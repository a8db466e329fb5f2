"""Builds the ingest HTTP app and owns its lifecycle."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

from prometheus_client import CollectorRegistry, Gauge
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bus.base import Bus
from bus.factory import bus_for
from bus.registry_view import RegistryView
from bus.topics import TopicNames
from ingest import (
    openapi,
    routes_admin,
    routes_engines,
    routes_files,
    routes_submit,
    routes_tasks,
    routes_v2,
)
from ingest.auth import AwaitNewKeys
from ingest.context import IngestContext
from ingest.errors import IngestError, NotFound
from ingest.file_store import FileStore
from ingest.hot_routes import HotRoutes
from ingest.lifecycle import LifecycleView
from ingest.model_repository import register_repository
from ingest.model_store import ModelStore
from ingest.rate_limit import RateLimiter, Replicas, parse_limits
from ingest.rate_middleware import RateLimitMiddleware
from ingest.responses import error_response, json_response
from ingest.results import ResultBook
from ingest.runners_view import RunnersView
from ingest.settings import IngestSettings
from ingest.submit import SubmitCore
from obs.histogram import LoopHistogram
from obs.metrics import LATENCY_BUCKETS, HttpMetrics, metrics_endpoint
from obs.process_metrics import register_process_metrics

log = logging.getLogger(__name__)


#: Routes served by ``HotRoutes`` past Starlette's router (every request they take
#: spends more in the router's machinery than the handler on a small model).
HOT_PATHS = frozenset({
    "/api/inference/tasks/{task_id}",
    "/v2/models/{name}/infer",
    "/v2/models/{name}/versions/{version}/infer",
    "/run",
    "/apps/run",
})


class Companion(Protocol):
    """A service started after ingest's own parts (with the others, concurrently) and
    stopped before them (`inferq up`)."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


def build_context(settings: IngestSettings, bus: Bus) -> IngestContext:
    topics = TopicNames(settings.bus.topic_prefix)
    # The lifecycle lines follow events on the result book's tail: one short-wait tail
    # for both (results.py says why).
    lifecycle = LifecycleView(bus, topics.events, capacity=settings.results_cache,
                              follow=False)
    results = ResultBook(bus, topics.results, capacity=settings.results_cache,
                         max_bytes=settings.results_cache_bytes,
                         max_waiters=settings.max_waiters,
                         alongside={topics.events: lifecycle.apply})
    core = SubmitCore(bus, topics, results, deadline_s=settings.request_deadline_s,
                      model_base_url=settings.model_base_url)
    # What the other views keep of a subtask follows its result in and out of the book.
    results.on_added = core.finished
    results.on_forgotten = lifecycle.forget
    return IngestContext(
        settings=settings,
        bus=bus,
        topics=topics,
        registry=RegistryView(bus, topics.registry),
        results=results,
        core=core,
        models=ModelStore(settings.model_dir),
        runners=RunnersView(bus, topics.runners, heartbeat_s=settings.runner_heartbeat_s),
        lifecycle=lifecycle,
        files=FileStore(settings.files_dir),
    )


def create_app(
    settings: IngestSettings,
    *,
    bus: Bus | None = None,
    companions: Sequence[Companion] = (),
    metrics: CollectorRegistry | None = None,
    extra_routes: Sequence[BaseRoute] = (),
    on_ready: Callable[[IngestContext], Awaitable[None]] | None = None,
) -> Starlette:
    bus = bus or bus_for(settings.bus, "inferq-ingest")
    ctx = build_context(settings, bus)
    # Rate limits are shared by every replica through their beats (rate_limit.py).
    replicas = Replicas(bus, ctx.topics.prefix + "ingest-replicas",
                        beat_s=settings.runner_heartbeat_s) if settings.rate_limits else None
    limiter = (RateLimiter(parse_limits(settings.rate_limits), replicas)
               if replicas is not None else None)
    metrics = metrics or CollectorRegistry()
    register_process_metrics(metrics)  # the process's: `inferq up` serves only this app
    Gauge("inferq_ingest_waiters", "synchronous calls waiting for a result",
          registry=metrics).set_function(lambda: ctx.results.waiting)
    Gauge("inferq_ingest_results_held", "finished results the result book holds",
          registry=metrics).set_function(lambda: ctx.results.held)
    Gauge("inferq_ingest_results_bytes", "what the result book charges them "
          "(INFERQ_RESULTS_CACHE_BYTES bounds it)",
          registry=metrics).set_function(lambda: ctx.results.held_bytes)
    ctx.core.on_answered = LoopHistogram(
        "inferq_ingest_end_to_end_seconds", "from publishing a request to its result (sync calls)",
        registry=metrics, buckets=LATENCY_BUCKETS).observe

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await bus.start()
        try:
            await bus.ensure_topics(ctx.topics.specs(settings.bus.partitions))
            await ctx.registry.start()
            await ctx.results.start()
            await ctx.runners.start()
            await ctx.lifecycle.start()
            if replicas is not None:
                await replicas.start()
            if settings.model_repository is not None:
                await register_repository(ctx.registry, ctx.models, settings.model_repository,
                                          settings.model_repository_account)
            # Together: on Kafka each joins its consumer group, which takes the broker a
            # while (tansu: half the session timeout). If one fails, the others still
            # finish starting, so that stopping meets nothing half-started.
            started = await asyncio.gather(*(c.start() for c in companions),
                                           return_exceptions=True)
            for outcome in started:
                if isinstance(outcome, BaseException):
                    raise outcome
            if on_ready is not None:
                await on_ready(ctx)
            log.info("ingest ready", extra={"url": settings.base_url})
            yield
        finally:
            for c in reversed(companions):
                await c.stop()
            if replicas is not None:
                await replicas.stop()
            await ctx.lifecycle.stop()
            await ctx.runners.stop()
            await ctx.results.stop()
            await ctx.registry.stop()
            await bus.stop()

    async def live(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def ready(request: Request) -> Response:
        ok = ctx.registry.ready and ctx.results.caught_up.is_set() and await bus.healthy()
        return json_response({"status": "ok" if ok else "starting"}, 200 if ok else 503)

    async def on_ingest_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, IngestError)
        return error_response(request, exc)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        err = NotFound(f"no route {request.url.path}") if exc.status_code == 404 else IngestError(
            str(exc.detail))
        if exc.status_code != 404:
            err.status_code = exc.status_code
            err.code = "invalid_request" if exc.status_code < 500 else "internal_error"
        return error_response(request, err)

    async def on_crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)
        return error_response(request, IngestError("internal error"))

    routes: list[BaseRoute] = [
        Route("/healthz", live, methods=["GET"]),
        Route("/readyz", ready, methods=["GET"]),
        Route("/metrics", metrics_endpoint(metrics), methods=["GET"]),
        *openapi.routes(),
        *routes_submit.routes(ctx),
        *routes_admin.routes(ctx),
        *routes_v2.routes(ctx),
        *routes_tasks.routes(ctx),
        *routes_engines.routes(ctx),
        *routes_files.routes(ctx),
        *extra_routes,
    ]
    hot = [r for r in routes if isinstance(r, Route) and r.path in HOT_PATHS
           and r.methods is not None and "POST" in r.methods]
    if {r.path for r in hot} != HOT_PATHS:
        raise RuntimeError(f"hot routes missing: {sorted(HOT_PATHS - {r.path for r in hot})}")
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(HttpMetrics, registry=metrics, service="ingest"),
                    Middleware(AwaitNewKeys, registry=ctx.registry),
                    # Limits off: no layer at all (one less hop on every request).
                    *([Middleware(RateLimitMiddleware, limiter=lambda: limiter)]
                      if limiter is not None else []),
                    Middleware(HotRoutes, routes=hot)],
        exception_handlers={IngestError: on_ingest_error, HTTPException: on_http_error,
                            Exception: on_crash},
    )
    app.state.ctx = ctx
    return app
