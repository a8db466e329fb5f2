"""Async submit and SSE lifecycle streams over real HTTP, on both buses.

Streams are read with a real SSE client (httpx-sse); every read is bounded by a
timeout so a missing event fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse

from tests import onnx_models
from tests.harness import Stack, running_stack

GOOD = [{"tensorName": "a", "payloadType": "Json", "payload": "[[1, 2, 3]]", "fileUrl": None},
        {"tensorName": "b", "payloadType": "Json", "payload": "[[4, 5, 6]]", "fileUrl": None}]


@pytest.fixture
async def stack(kafka_bootstrap: str | None, tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(kafka_bootstrap, tmp_path,
                             notifier_overrides={"sse_unknown_wait_s": 0.5}) as s:
        yield s


async def read_events(s: Stack, path: str, key: str, n: int | None = None,
                      last_id: str | None = None, timeout_s: float = 20.0
                      ) -> list[ServerSentEvent]:
    """Events of one stream until it ends (or ``n`` arrived), within ``timeout_s``."""
    headers = {"X-Api-Key": key} | ({"Last-Event-ID": last_id} if last_id else {})
    out: list[ServerSentEvent] = []

    async def run() -> None:
        async with aconnect_sse(s.client, "GET", s.base_url + path, headers=headers) as es:
            assert es.response.status_code == 200, await es.response.aread()
            async for ev in es.aiter_sse():
                out.append(ev)
                if n is not None and len(out) >= n:
                    return

    await asyncio.wait_for(run(), timeout_s)
    return out


async def submit(s: Stack, task: str, key: str, prefer: str | None = None,
                 body: dict[str, Any] | None = None) -> httpx.Response:
    headers = {"X-Api-Key": key} | ({"Prefer": prefer} if prefer else {})
    return await s.client.post(f"{s.base_url}/api/inference/tasks/{task}",
                               json=body or {"bindings": GOOD}, headers=headers)


async def setup_task(s: Stack, account: str = "acme") -> tuple[str, str]:
    task = await s.create_task(account, await s.upload_model("ints", onnx_models.int_model()))
    return task, await s.create_key(account)


async def test_async_submit_then_full_lifecycle_in_order(stack: Stack) -> None:
    task, key = await setup_task(stack)
    r = await submit(stack, task, key, "respond-async")
    assert r.status_code == 202, r.text
    body = r.json()
    assert body == {"id": body["id"], "state": "pending", "data": None, "error": None}
    assert r.headers["preference-applied"] == "respond-async"
    sid = body["id"]
    events = await read_events(stack, f"/api/inference/subtasks/{sid}/events", key)
    assert [e.event for e in events] == ["queued", "running", "succeeded"]
    assert [e.id for e in events] == [f"{sid}:1", f"{sid}:2", f"{sid}:3"]
    # GET may lag the stream by a fetch or two; it must converge on the very same body.
    got = await stack.settled(sid, key)
    assert json.loads(events[-1].data) == got
    assert got["data"] == {"sum": [[5, 7, 9]], "prod": [[4, 10, 18]]}


async def test_reconnect_with_last_event_id_gets_exactly_the_missing_events(
    stack: Stack,
) -> None:
    task, key = await setup_task(stack)
    sid = (await submit(stack, task, key, "respond-async")).json()["id"]
    path = f"/api/inference/subtasks/{sid}/events"
    first = await read_events(stack, path, key, n=1)  # then the client drops the stream
    assert [e.event for e in first] == ["queued"]
    rest = await read_events(stack, path, key, last_id=first[0].id)
    assert [(e.event, e.id) for e in rest] == [("running", f"{sid}:2"),
                                                ("succeeded", f"{sid}:3")]
    tail = await read_events(stack, path, key, last_id=f"{sid}:2")
    assert [e.id for e in tail] == [f"{sid}:3"]


async def test_late_subscriber_gets_the_final_event_at_once(stack: Stack) -> None:
    task, key = await setup_task(stack)
    r = await submit(stack, task, key)  # synchronous: finished when it returns
    assert r.json()["state"] == "success"
    sid = r.json()["id"]
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    events = await read_events(stack, f"/api/inference/subtasks/{sid}/events", key,
                               last_id=f"{sid}:2")
    assert loop.time() - t0 < 5
    assert [e.event for e in events] == ["succeeded"]
    assert json.loads(events[0].data) == r.json()


async def test_other_accounts_and_unknown_ids_get_404(stack: Stack) -> None:
    task, key = await setup_task(stack)
    other = await stack.create_key("someone-else")
    sid = (await submit(stack, task, key)).json()["id"]
    for path in (f"/api/inference/subtasks/{sid}/events",
                 f"/api/inference/subtasks/{sid}/deliveries",
                 f"/api/inference/tasks/{task}/events",
                 "/api/inference/subtasks/no-such-subtask/events"):
        r = await stack.client.get(stack.base_url + path, headers={"X-Api-Key": other})
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error"]["code"] == "not_found"
    r = await stack.client.get(f"{stack.base_url}/api/inference/subtasks/{sid}/events")
    assert r.status_code == 401


async def test_task_stream_carries_every_subtask_and_resumes(stack: Stack) -> None:
    task, key = await setup_task(stack)
    path = f"/api/inference/tasks/{task}/events"
    got: list[ServerSentEvent] = []
    connected = asyncio.Event()

    async def follow() -> None:
        async with aconnect_sse(stack.client, "GET", stack.base_url + path,
                                headers={"X-Api-Key": key}) as es:
            assert es.response.status_code == 200
            connected.set()
            async for ev in es.aiter_sse():
                got.append(ev)
                if len(got) == 6:
                    return

    follower = asyncio.create_task(follow())
    await asyncio.wait_for(connected.wait(), 10)
    ids = []
    for _ in range(2):
        r = await submit(stack, task, key, "respond-async")
        ids.append(r.json()["id"])
    await asyncio.wait_for(follower, 20)
    for sid in ids:
        mine = [e.event for e in got if e.id.startswith(sid + ":")]
        assert mine == ["queued", "running", "succeeded"], (sid, got)
    resumed = await read_events(stack, path, key, n=3, last_id=got[2].id)
    assert [e.id for e in resumed] == [e.id for e in got[3:]]


async def test_prefer_wait_and_bad_prefer(stack: Stack) -> None:
    task, key = await setup_task(stack)
    r = await submit(stack, task, key, "respond-async, wait=30")
    assert r.status_code == 200 and r.json()["state"] == "success", r.text
    assert r.headers["preference-applied"] == "respond-async, wait=30"
    r = await submit(stack, task, key, "wait=soon")
    assert r.status_code == 400 and "wait" in r.json()["error"]["message"]


async def test_quiet_streams_get_comment_pings(kafka_bootstrap: str | None,
                                               tmp_path: Path) -> None:
    async with running_stack(kafka_bootstrap, tmp_path,
                             notifier_overrides={"sse_ping_s": 0.2}) as s:
        task, key = await setup_task(s)
        pings = 0
        url = f"{s.base_url}/api/inference/tasks/{task}/events"
        async with s.client.stream("GET", url, headers={"X-Api-Key": key}) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")

            async def read() -> None:
                nonlocal pings
                async for line in r.aiter_lines():
                    if line.startswith(":"):  # an SSE comment: the keep-alive ping
                        pings += 1
                        if pings == 3:
                            return

            await asyncio.wait_for(read(), 10)
        assert pings == 3
