"""Undecodable requests: dead-lettered, answered `failed` where they have an id, never stall."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import msgspec

from tests import onnx_models
from tests.harness import running_stack


async def test_undecodable_requests_go_to_deadletter(kafka_bootstrap: str | None,
                                                     tmp_path: Path) -> None:
    async with running_stack(kafka_bootstrap, tmp_path) as s:
        task = await s.create_task("acme", await s.upload_model("ints", onnx_models.int_model()))
        key = await s.create_key("acme")
        bus = s.app.state.ctx.bus
        sid = str(uuid.uuid4())
        # Has ids, but its model field is not a model reference.
        partial = msgspec.msgpack.encode({"subtask_id": sid, "task_id": task,
                                          "account_id": "acme", "model": 42})
        await bus.publish(s.topics.requests, b"junk", b"\xc1not msgpack")
        await bus.publish(s.topics.requests, sid.encode(), partial)

        r = None
        for _ in range(200):
            r = await s.client.get(f"{s.base_url}/api/inference/subtasks/{sid}",
                                   headers={"X-Api-Key": key})
            if r.status_code == 200:
                break
            await asyncio.sleep(0.05)
        assert r is not None and r.status_code == 200, r.text if r else None
        body = r.json()
        assert body["state"] == "failed"
        assert body["error"].startswith("the request could not be decoded")
        assert await s.count_records(s.topics.deadletter) == 2

        # The partition is not stalled: the next request is served.
        ok = await s.submit(task, key, [
            {"tensorName": "a", "payloadType": "Json", "payload": json.dumps([[1, 1, 1]])},
            {"tensorName": "b", "payloadType": "Json", "payload": json.dumps([[2, 2, 2]])}])
        assert ok.json()["state"] == "success"
