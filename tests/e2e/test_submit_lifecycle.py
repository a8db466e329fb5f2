"""Pending, expired, retrieval after restarts, and a second ingest seeing the registry."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from tests import onnx_models
from tests.harness import Stack, running_stack


def jb(name: str, value: Any) -> dict[str, Any]:
    return {"tensorName": name, "payloadType": "Json", "payload": json.dumps(value),
            "fileUrl": None}


GOOD = [jb("a", [[1, 2, 3]]), jb("b", [[4, 5, 6]])]
WANT = {"sum": [[5, 7, 9]], "prod": [[4, 10, 18]]}


async def poll_until_final(s: Stack, subtask: str, key: str) -> dict[str, Any]:
    for _ in range(200):
        r = await s.client.get(f"{s.base_url}/api/inference/subtasks/{subtask}",
                               headers={"X-Api-Key": key})
        assert r.status_code == 200, r.text
        if r.json()["state"] != "pending":
            return dict(r.json())
        await asyncio.sleep(0.05)
    raise AssertionError("subtask never finished")


async def test_pending_then_retrievable(kafka_bootstrap: str | None, tmp_path: Path) -> None:
    async with running_stack(kafka_bootstrap, tmp_path,
                             ingest_overrides={"sync_timeout_s": 0.0}) as s:
        task = await s.create_task("acme", await s.upload_model("ints", onnx_models.int_model()))
        key = await s.create_key("acme")
        r = await s.submit(task, key, GOOD)
        assert r.status_code == 200
        body = r.json()
        assert body["state"] == "pending" and body["data"] is None and body["error"] is None
        final = await poll_until_final(s, body["id"], key)
        assert final == {"id": body["id"], "state": "success", "data": WANT, "error": None}


async def test_expired_requests_fail_without_running(kafka_bootstrap: str | None,
                                                     tmp_path: Path) -> None:
    async with running_stack(kafka_bootstrap, tmp_path,
                             ingest_overrides={"request_deadline_s": 0.001}) as s:
        task = await s.create_task("acme", await s.upload_model("ints", onnx_models.int_model()))
        key = await s.create_key("acme")
        await asyncio.sleep(0.01)
        body = (await s.submit(task, key, GOOD)).json()
        assert body["state"] == "failed" and body["data"] is None
        assert body["error"].startswith("deadline exceeded")
        text = (await s.client.get(f"{s.base_url}/metrics")).text
        assert 'inferq_runner_results_total{state="expired"} 1.0' in text
        assert 'inferq_runner_results_total{state="succeeded"}' not in text


async def test_results_and_registry_survive_restart(kafka_bootstrap: str | None,
                                                    tmp_path: Path) -> None:
    async with running_stack(kafka_bootstrap, tmp_path) as s:
        prefix = s.bus.topic_prefix
        task = await s.create_task("acme", await s.upload_model("ints", onnx_models.int_model()))
        key = await s.create_key("acme")
        done = (await s.submit(task, key, GOOD)).json()
        assert done["state"] == "success"
    # A new process (same data dir, or same topics on Kafka) rebuilds everything.
    async with running_stack(kafka_bootstrap, tmp_path, prefix=prefix) as s2:
        r = await s2.client.get(f"{s2.base_url}/api/inference/subtasks/{done['id']}",
                                headers={"X-Api-Key": key})
        assert r.status_code == 200 and r.json() == done
        again = (await s2.submit(task, key, GOOD)).json()
        assert again["state"] == "success" and again["data"] == WANT


async def test_second_ingest_sees_tasks_of_the_first(tansu: str, tmp_path: Path) -> None:
    async with running_stack(tansu, tmp_path / "one") as first:
        async with running_stack(tansu, tmp_path / "two", prefix=first.bus.topic_prefix) as second:
            model = await first.upload_model("ints", onnx_models.int_model())
            task = await first.create_task("acme", model)
            key = await first.create_key("acme")
            # Created through the first, usable at once through the second: the second
            # waits for a key it has not seen yet, and the registry is one ordered
            # partition, so the task written before the key has arrived with it.
            r = await second.submit(task, key, GOOD)
            assert r.status_code == 200 and r.json()["data"] == WANT
            listed = (await second.admin("GET", "/admin/tasks?account=acme")).json()
            assert [t["id"] for t in listed] == [task]


async def test_lifecycle_events_on_the_events_topic(kafka_bootstrap: str | None,
                                                    tmp_path: Path) -> None:
    from schemas.messages import event_decoder

    async with running_stack(kafka_bootstrap, tmp_path) as s:
        task = await s.create_task("acme", await s.upload_model("ints", onnx_models.int_model()))
        key = await s.create_key("acme")
        done = (await s.submit(task, key, GOOD)).json()
        tail = s.app.state.ctx.bus.tail([s.topics.events], from_beginning=True)
        await tail.start()
        events = []
        for _ in range(200):
            events += [event_decoder.decode(r.value) for r in await tail.fetch(100, 0.05)]
            if len(events) >= 3:
                break
        await tail.stop()
    assert [e.kind for e in events] == ["queued", "running", "succeeded"]
    assert {e.subtask_id for e in events} == {done["id"]}
    assert events[0].at_ms <= events[1].at_ms <= events[2].at_ms
    assert done["state"] == "success" and done["data"]
    # The GET body without its outputs, which travel once, on results.
    assert json.loads(events[2].body) == {"id": done["id"], "state": "success", "error": None}


async def test_every_record_of_a_request_carries_the_message_headers(
        kafka_bootstrap: str | None, tmp_path: Path) -> None:
    """DESIGN.md, Topics: every message has ``content-type``, ``schema-version`` and
    ``traceparent``; those a request leads to carry its trace, whoever writes them."""
    from schemas.messages import SCHEMA_VERSION

    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    async with running_stack(kafka_bootstrap, tmp_path) as s:
        task = await s.create_task("acme", await s.upload_model("ints", onnx_models.int_model()))
        key = await s.create_key("acme")
        r = await s.client.post(f"{s.base_url}/api/inference/tasks/{task}",
                                json={"bindings": GOOD},
                                headers={"X-Api-Key": key, "traceparent": traceparent})
        assert r.json()["state"] == "success"
        topics = [s.topics.requests, s.topics.events, s.topics.results]
        tail = s.app.state.ctx.bus.tail(topics, from_beginning=True)
        await tail.start()
        records = []
        for _ in range(200):
            records += await tail.fetch(100, 0.05)
            if len(records) >= 5:
                break
        await tail.stop()
    assert sorted(r.topic for r in records) == sorted(
        [s.topics.requests, s.topics.results] + [s.topics.events] * 3)
    trace_id = traceparent.split("-")[1]
    for rec in records:
        assert rec.header("content-type") == b"application/msgpack", rec.topic
        assert rec.header("schema-version") == SCHEMA_VERSION, rec.topic
        sent = (rec.header("traceparent") or b"").decode()
        assert sent.split("-")[1] == trace_id, (rec.topic, sent)
