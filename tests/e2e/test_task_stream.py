"""``GET /tasks/{id}/stream`` over real HTTP on both buses, read with httpx-sse.

Events ``update`` (queued, running), then ``done`` or ``error``; each event's data is
the task DTO as ``GET /tasks/{id}`` shows it at that step, in the caller's API version;
``Last-Event-ID`` resumes with exactly the missing events. Every read is bounded.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from httpx_sse import ServerSentEvent, aconnect_sse

from tests import onnx_models
from tests.harness import Stack, running_stack

V2 = {"X-API-Version": "2"}


@pytest.fixture
async def stack(kafka_bootstrap: str | None, tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(kafka_bootstrap, tmp_path,
                             notifier_overrides={"sse_unknown_wait_s": 0.5}) as s:
        yield s


def auth(key: str, v2: bool = True) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **(V2 if v2 else {})}


async def final_view(s: Stack, tid: str, headers: dict[str, str]) -> dict[str, object]:
    """``GET /tasks/{id}`` once it is final. The notifier (stream) and ingest (GET) follow
    the bus independently, so GET may lag the stream by a fetch; it must converge."""
    for _ in range(100):
        body: dict[str, object] = (await s.client.get(f"{s.base_url}/tasks/{tid}",
                                                      headers=headers)).json()
        if body["status"] in (10, 11, 12):
            return body
        await asyncio.sleep(0.02)
    raise AssertionError(f"task {tid} never became final through GET")


async def read(s: Stack, tid: str, headers: dict[str, str], n: int | None = None,
               timeout_s: float = 20.0) -> list[ServerSentEvent]:
    """The stream's events until it ends (or ``n`` arrived), within ``timeout_s``."""
    out: list[ServerSentEvent] = []

    async def run() -> None:
        async with aconnect_sse(s.client, "GET", f"{s.base_url}/tasks/{tid}/stream",
                                headers=headers) as es:
            assert es.response.status_code == 200, await es.response.aread()
            assert es.response.headers["content-type"].startswith("text/event-stream")
            async for ev in es.aiter_sse():
                out.append(ev)
                if n is not None and len(out) >= n:
                    return

    await asyncio.wait_for(run(), timeout_s)
    return out


async def run_task(s: Stack, key: str, app: str, inputs: dict[str, Any],
                   metadata: dict[str, Any] | None = None) -> str:
    r = await s.client.post(f"{s.base_url}/run", headers=auth(key), json={
        "app": app, "input": inputs, **({"metadata": metadata} if metadata else {})})
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


async def test_stream_updates_then_done_resumable_and_private(stack: Stack) -> None:
    task = await stack.create_task("acme", await stack.upload_model(
        "loop", onnx_models.loop_model()))
    key = await stack.create_key("acme")
    # Runs a few hundred ms: the stream opens while it is queued or running.
    tid = await run_task(stack, key, task, {"x": [3.0], "steps": 150}, {"k": "v"})
    first = await read(stack, tid, auth(key), n=1)
    assert [(e.event, e.id) for e in first] == [("update", f"{tid}:1")]
    queued = first[0].json()
    assert queued["status"] == 2 and queued["status_name"] == "queued"
    assert queued["app"] == task and queued["metadata"] == {"k": "v"}
    assert queued["created_at"] == queued["updated_at"] and "output" not in queued
    # Reconnecting with the last id seen gets exactly the rest, then the stream ends.
    rest = await read(stack, tid, {**auth(key), "Last-Event-ID": f"{tid}:1"})
    assert [(e.event, e.id) for e in rest] == [("update", f"{tid}:2"), ("done", f"{tid}:3")]
    running, done = rest[0].json(), rest[1].json()
    assert running["status"] == 7 and running["status_name"] == "running"
    assert running["created_at"] == queued["created_at"] and "output" not in running
    assert done["status"] == 10 and done["output"] == {"y": [[3.0]]}
    # The final event is what GET /tasks/{id} answers.
    assert done == await final_view(stack, tid, auth(key))
    assert await read(stack, tid, {**auth(key), "Last-Event-ID": f"{tid}:3"}) == []
    # From the start: the whole sequence, no gaps or repeats.
    full = await read(stack, tid, auth(key))
    assert [e.id for e in full] == [f"{tid}:1", f"{tid}:2", f"{tid}:3"]
    assert [e.json() for e in full] == [queued, running, done]
    # Version 1: the same DTOs in the version-1 wrapper, as GET /tasks/{id} gives them.
    v1 = await read(stack, tid, auth(key, v2=False))
    assert [e.event for e in v1] == ["update", "update", "done"]
    assert [e.json() for e in v1] == [{"success": True, "status": 200, "data": d}
                                      for d in (queued, running, done)]
    # Authenticated like the rest; another account's task is 404, in either version.
    other = await stack.create_key("other")
    url = f"{stack.base_url}/tasks/{tid}/stream"
    r = await stack.client.get(url, headers=auth(other))
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert r.json() == {"type": "https://inferq.dev/errors/not_found", "title": "Not Found",
                        "status": 404, "detail": f"task {tid} not found"}
    r = await stack.client.get(url, headers=auth(other, v2=False))
    assert r.status_code == 404 and r.json() == {"success": False, "status": 404, "error": {
        "code": "not_found", "message": f"task {tid} not found"}}
    r = await stack.client.get(url, headers=V2)
    assert r.status_code == 401 and r.json()["type"].endswith("/unauthorized")
    r = await stack.client.get(f"{stack.base_url}/tasks/nope/stream", headers=auth(key))
    assert r.status_code == 404


async def test_failing_request_ends_with_error(stack: Stack) -> None:
    task = await stack.create_task("acme", await stack.upload_model(
        "g", onnx_models.gather_model()))
    key = await stack.create_key("acme")
    tid = await run_task(stack, key, task, {"idx": [9]})  # out of range: ONNX Runtime fails
    events = await read(stack, tid, auth(key))
    assert [(e.event, e.id) for e in events] == [
        ("update", f"{tid}:1"), ("update", f"{tid}:2"), ("error", f"{tid}:3")]
    assert [json.loads(e.data)["status"] for e in events] == [2, 7, 11]
    failed = events[-1].json()
    assert failed["status_name"] == "failed" and failed["error"].startswith("model error:")
    assert "output" not in failed
    assert failed == await final_view(stack, tid, auth(key))
