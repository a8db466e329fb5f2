"""A real inferq stack in the test's event loop: uvicorn on a free port, real HTTP."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette

from bus.topics import TopicNames
from inferq.serve import bound_port, server
from inferq.up import build_up
from ingest.settings import IngestSettings
from notifier.settings import NotifierSettings
from runner.settings import RunnerSettings
from schemas.bus_settings import BusSettings

ADMIN_TOKEN = "test-admin-token-0123456789"
#: Every Kafka test's group session timeout. Tansu admits a group's first member only
#: after about half of it (5 s at the default 10 s); a short one keeps Kafka tests quick.
SESSION_TIMEOUT_MS = 3000


def bus_settings(kafka_bootstrap: str | None, data_dir: Path, prefix: str | None = None
                 ) -> BusSettings:
    return BusSettings(kafka_bootstrap=kafka_bootstrap,
                       topic_prefix=prefix or f"t{uuid.uuid4().hex[:10]}.",
                       fetch_max_wait_ms=5, partitions=2, data_dir=data_dir,
                       session_timeout_ms=SESSION_TIMEOUT_MS)


@dataclass
class Stack:
    base_url: str
    client: httpx.AsyncClient
    bus: BusSettings
    app: Starlette

    async def count_records(self, topic: str) -> int:
        """Records on ``topic`` now (every partition), read through the stack's own bus."""
        ctx = self.app.state.ctx
        tail = ctx.bus.tail([topic], from_beginning=True)
        await tail.start()
        try:
            n = 0
            for _ in range(200):
                if tail.caught_up():
                    return n
                n += len(await tail.fetch(1000, 0.05))
            raise AssertionError(f"could not read {topic} to its end")
        finally:
            await tail.stop()

    @property
    def topics(self) -> TopicNames:
        return TopicNames(self.bus.topic_prefix)

    async def admin(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", **kw.pop("headers", {})}
        return await self.client.request(method, self.base_url + path, headers=headers, **kw)

    async def create_key(self, account: str) -> str:
        r = await self.admin("POST", "/admin/keys", json={"account": account})
        assert r.status_code == 201, r.text
        return str(r.json()["key"])

    async def upload_model(self, name: str, data: bytes, version: str = "1") -> str:
        r = await self.admin("POST", f"/admin/models?name={name}&version={version}", content=data)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    async def create_task(self, account: str, model_id: str, fill: bool = True) -> str:
        r = await self.admin("POST", "/admin/tasks",
                             json={"account": account, "model": model_id,
                                   "fillBindingsViaApi": fill})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    async def submit(self, task_id: str, key: str, bindings: list[dict[str, Any]],
                     **kw: Any) -> httpx.Response:
        return await self.client.post(f"{self.base_url}/api/inference/tasks/{task_id}",
                                      json={"bindings": bindings},
                                      headers={"X-Api-Key": key}, **kw)

    async def settled(self, subtask_id: str, key: str) -> dict[str, Any]:
        """``GET /subtasks/{id}`` once it no longer says pending (bounded, 20 s): the
        notifier and ingest follow ``results`` independently, so a stream's final event
        or a webhook can arrive before ingest has read the result (README)."""
        deadline = time.monotonic() + 20
        while True:
            r = await self.client.get(f"{self.base_url}/api/inference/subtasks/{subtask_id}",
                                      headers={"X-Api-Key": key})
            assert r.status_code == 200, r.text
            if r.json()["state"] != "pending" or time.monotonic() > deadline:
                return dict(r.json())
            await self.client.get(f"{self.base_url}/healthz")  # a bounded poll, not a sleep


@asynccontextmanager
async def running_stack(
    kafka_bootstrap: str | None, data_dir: Path, *, prefix: str | None = None,
    ingest_overrides: dict[str, Any] | None = None,
    runner_overrides: dict[str, Any] | None = None,
    notifier_overrides: dict[str, Any] | None = None,
) -> AsyncIterator[Stack]:
    bus = bus_settings(kafka_bootstrap, data_dir / "bus", prefix)
    ingest = replace(IngestSettings(bus=bus, admin_token=ADMIN_TOKEN,
                                    model_dir=data_dir / "models", allow_private_urls=True),
                     **(ingest_overrides or {}))
    runner = replace(RunnerSettings(bus=bus, runner_id=f"r-{uuid.uuid4().hex[:6]}",
                                    group_id=f"g-{bus.topic_prefix}", allow_private_urls=True,
                                    heartbeat_s=1.0, cache_dir=data_dir / "cache"),
                     **(runner_overrides or {}))
    notifier = replace(NotifierSettings(bus=bus), **(notifier_overrides or {}))
    app, _ = build_up(ingest, runner, notifier)
    srv = server(app, "127.0.0.1", 0)
    task = asyncio.create_task(srv.serve())
    for _ in range(600):
        if srv.started or task.done():
            break
        await asyncio.sleep(0.05)
    if not srv.started:
        srv.should_exit = True
        await task  # surfaces the startup error
        raise RuntimeError("server did not start")
    base = f"http://127.0.0.1:{bound_port(srv)}"
    try:
        async with httpx.AsyncClient(timeout=60) as client:
            yield Stack(base, client, bus, app)
    finally:
        srv.should_exit = True
        await asyncio.wait_for(task, 60)
