"""Prometheus exposition and per-route HTTP metrics as a raw ASGI middleware."""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from obs.histogram import HistogramChild, LoopHistogram

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180,
)
#: Cached label children per HttpMetrics (past it, ``.labels()`` is called each time).
_MAX_CHILDREN = 1024


def metrics_endpoint(registry: CollectorRegistry):  # type: ignore[no-untyped-def]
    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return metrics


class HttpMetrics:
    """Counts requests by route template, method and status; times them by route."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry, service: str) -> None:
        self.app = app
        self.requests = Counter(
            "inferq_http_requests", "HTTP requests by route and status",
            ["service", "route", "method", "status"], registry=registry,
        )
        self.latency = LoopHistogram(
            "inferq_http_request_duration_seconds", "HTTP request latency by route",
            labelnames=["service", "route"], registry=registry, buckets=LATENCY_BUCKETS,
        )
        self.service = service
        # The labelled children, looked up once per (route, method, status) rather than
        # through ``.labels()`` on every request; bounded, since methods come from clients.
        self._counters: dict[tuple[str, str, int], Counter] = {}
        self._timers: dict[str, HistogramChild] = {}

    def _counter(self, template: str, method: str, status: int) -> Counter:
        key = (template, method, status)
        child = self._counters.get(key)
        if child is None:
            child = self.requests.labels(self.service, template, method, str(status))
            if len(self._counters) < _MAX_CHILDREN:
                self._counters[key] = child
        return child

    def _timer(self, template: str) -> HistogramChild:
        child = self._timers.get(template)
        if child is None:
            child = self.latency.labels(self.service, template)
            if len(self._timers) < _MAX_CHILDREN:
                self._timers[template] = child
        return child

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            self._counter(template, scope["method"], status).inc()
            self._timer(template).observe(time.perf_counter() - start)


class WebhookMetrics:
    """Webhook delivery counters for the notifier's deliverer to increment.

    ``attempts`` counts every HTTP attempt by outcome (``delivered``, ``retry``,
    ``failed``, ``deadlettered``); ``duration`` times each attempt.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter(
            "inferq_notifier_webhook_attempts", "webhook delivery attempts by outcome",
            ["outcome"], registry=registry,
        )
        self.duration = Histogram(
            "inferq_notifier_webhook_seconds", "webhook attempt duration",
            registry=registry, buckets=LATENCY_BUCKETS,
        )
