"""ASGI middleware: take a token per call, put the rate headers on every response.

Every rate-limited response carries ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and
``X-RateLimit-Reset`` (Unix seconds); a refused call is 429 ``rate_limited`` with
``Retry-After``, in the caller's error dialect. An unhandled error is answered here
(500 ``internal_error``) so that it carries the headers too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest.body import api_key
from ingest.errors import IngestError, RateLimited
from ingest.rate_limit import RateLimiter, caller_id, classify
from ingest.responses import error_response

log = logging.getLogger(__name__)


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, limiter: Callable[[], RateLimiter | None]) -> None:
        self.app = app
        self._limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limiter = self._limiter()
        if scope["type"] != "http" or limiter is None:
            await self.app(scope, receive, send)
            return
        cls = classify(scope["method"], scope["path"])
        if cls is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        client = scope.get("client")
        d = limiter.take(caller_id(api_key(request), client[0] if client else ""), cls)
        headers = [(b"x-ratelimit-limit", str(d.limit).encode()),
                   (b"x-ratelimit-remaining", str(d.remaining).encode()),
                   (b"x-ratelimit-reset", str(d.reset_epoch).encode())]
        if not d.allowed:
            period = limiter.limits[cls].period_s
            resp = error_response(request, RateLimited(
                f"rate limit of {d.limit} {cls} calls per {period:g} s exceeded for this key; "
                f"retry in {d.retry_after_s} s", d.retry_after_s))
            resp.raw_headers.extend(headers)
            await resp(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if started:
                raise
            log.exception("unhandled error on %s", scope["path"])
            resp = error_response(request, IngestError("internal error"))
            resp.raw_headers.extend(headers)
            await resp(scope, receive, send)
