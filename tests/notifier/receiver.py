"""A real webhook receiver on 127.0.0.1 (aiohttp) that verifies every delivery with the
``standardwebhooks`` library from PyPI, and answers with a programmable script."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook

from tests.local_http import serving


@dataclass
class Delivery:
    at: float
    path: str
    headers: dict[str, str]
    body: bytes
    verified: Any


@dataclass
class Receiver:
    base_url: str
    secrets: list[str] = field(default_factory=list)
    #: Answers for the next requests, in order: (status, headers); then 204.
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def verify(self, body: bytes, headers: dict[str, str]) -> Any:
        """Each configured secret on its own must accept the delivery."""
        out = None
        for secret in self.secrets:
            out = Webhook(secret).verify(body, headers)
        return out

    async def wait_for(self, n: int, timeout_s: float = 30.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout_s
        while len(self.deliveries) < n:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"only {len(self.deliveries)} of {n} deliveries arrived"
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), min(remaining, 0.5))
            except TimeoutError:
                pass
        return self.deliveries[:n]


@asynccontextmanager
async def webhook_receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver(base_url="")

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = dict(request.headers)
        try:
            verified = receiver.verify(body, headers)
        except Exception as exc:  # the library's WebhookVerificationError, or bad base64
            receiver.unverified.append(f"{type(exc).__name__}: {exc}")
            return web.Response(status=400)
        receiver.deliveries.append(Delivery(time.monotonic(), request.path, headers, body,
                                            verified))
        receiver.arrived.set()
        if receiver.script:
            status, extra = receiver.script.pop(0)
            return web.Response(status=status, headers=extra)
        return web.Response(status=204)

    async def target(request: web.Request) -> web.StreamResponse:
        receiver.unverified.append("redirect target was fetched")
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook/{name}", handle)
    app.router.add_route("*", "/redirected", target)
    async with serving(app) as receiver.base_url:
        yield receiver
