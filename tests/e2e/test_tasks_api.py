"""The tasks API over real HTTP on both buses: conventions, runs, tasks, cancel, files.

Rate limits are configured small here so tests stay fast; the defaults are checked by
``test_default_rate_limits``.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from ingest.rate_limit import parse_limits
from tests import onnx_models
from tests.harness import ADMIN_TOKEN, Stack, running_stack

V2 = {"X-API-Version": "2"}


@pytest.fixture
async def stack(kafka_bootstrap: str | None, tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(
        kafka_bootstrap, tmp_path,
        ingest_overrides={"rate_limits": "run=4/3600,get=1000/60,upload=50/60",
                          "files_dir": tmp_path / "files", "max_file_bytes": 4096},
        runner_overrides={"files_dir": tmp_path / "files"},
    ) as s:
        yield s


def auth(key: str, v2: bool = False) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **(V2 if v2 else {})}


async def poll(fn: Any, until: Any, timeout_s: float = 20) -> Any:
    """``fn()`` until ``until`` holds; a failure names every value seen, in order, and
    when each first appeared (s after the start)."""
    started = time.monotonic()
    deadline = started + timeout_s
    seen: list[tuple[Any, float]] = []
    while True:
        value = await fn()
        if until(value):
            return value
        if not seen or seen[-1][0] != value:
            seen.append((value, round(time.monotonic() - started, 2)))
        assert time.monotonic() < deadline, f"condition not met, values seen: {seen}"
        await asyncio.sleep(0.05)


RATE_HEADERS = {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"}


def check_error(r: httpx.Response, v2: bool, status: int, code: str, message: str,
                title: str) -> None:
    if v2:
        want = {"type": f"https://inferq.dev/errors/{code}", "title": title,
                "status": status, "detail": message}
        ctype = "application/problem+json"
    else:
        want = {"success": False, "status": status, "error": {"code": code, "message": message}}
        ctype = "application/json"
    assert r.status_code == status, r.text
    assert r.content == json.dumps(want, separators=(",", ":")).encode()
    assert r.headers["content-type"] == ctype
    assert r.headers["content-length"] == str(len(r.content))
    names = set(r.headers.keys())
    assert RATE_HEADERS <= names, names
    expected = {"content-type", "content-length", "date", "server", *RATE_HEADERS}
    if code == "rate_limited":
        expected.add("retry-after")
    assert names == expected, names


@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
async def test_each_error_code_in_both_versions(kafka_bootstrap: str | None, tmp_path: Path,
                                                v2: bool) -> None:
    (tmp_path / "files").write_text("a file where the files directory should be")
    async with running_stack(kafka_bootstrap, tmp_path, ingest_overrides={
            "rate_limits": "run=1/3600", "files_dir": tmp_path / "files"}) as s:
        key = await s.create_key("acme")
        h = V2 if v2 else {}
        base = s.base_url
        r = await s.client.get(f"{base}/tasks/abc", headers=h)
        check_error(r, v2, 401, "unauthorized",
                    "missing API key: send it in the X-Api-Key header", "Unauthorized")
        r = await s.client.get(f"{base}/tasks/abc", headers={**h, "X-Api-Key": "pk-bad"})
        check_error(r, v2, 401, "unauthorized", "invalid API key", "Unauthorized")
        r = await s.client.post(f"{base}/engines/r-1/drain", headers={**h, **auth(key)})
        check_error(r, v2, 403, "forbidden",
                    "drain needs the admin token; API keys may only list engines", "Forbidden")
        r = await s.client.get(f"{base}/tasks/nope", headers={**h, **auth(key)})
        check_error(r, v2, 404, "not_found", "task nope not found", "Not Found")
        r = await s.client.post(f"{base}/run", headers={**h, **auth(key)},
                                content=b'{"app": "x", "input": {}, "extra": 1}')
        check_error(r, v2, 400, "invalid_request",
                    "invalid request body: Object contains unknown field `extra`",
                    "Invalid Request")
        r = await s.client.post(f"{base}/run", headers={**h, **auth(key)}, json={})
        check_error(r, v2, 429, "rate_limited",
                    "rate limit of 1 run calls per 3600 s exceeded for this key; "
                    "retry in 3600 s", "Too Many Requests")
        assert r.headers["retry-after"] == "3600"
        r = await s.client.post(f"{base}/files", headers={**h, **auth(key)},
                                files={"file": ("x.npy", b"\x93NUMPY")})
        check_error(r, v2, 500, "internal_error", "internal error", "Internal Server Error")


async def test_run_and_every_task_view(stack: Stack) -> None:
    model = onnx_models.int_model()
    model_id = await stack.upload_model("ints", model)
    task = await stack.create_task("acme", model_id)
    key = await stack.create_key("acme")
    base = stack.base_url
    a, b = [[1, 2, 3]], [[4, 5, 6]]
    r = await stack.client.post(f"{base}/run", headers=auth(key), json={
        "app": task, "input": {"a": a, "b": b}, "wait": True, "metadata": {"k": "v"}})
    assert r.status_code == 200, r.text
    assert int(r.headers["x-ratelimit-remaining"]) == 3
    env = r.json()
    assert env["success"] is True and env["status"] == 200
    dto = env["data"]
    assert dto["status"] == 10 and dto["status_name"] == "completed"
    assert dto["output"] == {"sum": [[5, 7, 9]], "prod": [[4, 10, 18]]}
    assert dto["metadata"] == {"k": "v"} and dto["app"] == task
    assert "error" not in dto and dto["created_at"].endswith("Z")
    tid = dto["id"]
    # Version 2: the bare resource, the same task.
    g = await stack.client.get(f"{base}/tasks/{tid}", headers=auth(key, v2=True))
    assert g.status_code == 200 and g.headers["content-type"] == "application/json"
    assert g.json() == dto
    st = (await stack.client.get(f"{base}/tasks/{tid}/status", headers=auth(key, True))).json()
    assert st == {"id": tid, "status": 10, "updated_at": dto["updated_at"]}
    tm = (await stack.client.get(f"{base}/tasks/{tid}/timings", headers=auth(key, True))).json()
    assert set(tm) == {"id", "status", "queued", "batch_wait", "fetch", "inference", "total",
                       "batch_size"}
    assert tm["inference"] > 0 and tm["total"] >= tm["inference"] and tm["batch_size"] == 1
    logs = (await stack.client.get(f"{base}/tasks/{tid}/logs", headers=auth(key, True))).json()
    lines = [line["message"] for line in logs["logs"]]
    assert lines[0] == "queued" and lines[-1].startswith("completed on r-")
    assert len(lines) == 3 and lines[1].startswith("running on r-"), lines
    # One core, two views: the submit API sees the same subtask.
    sub = await stack.client.get(f"{base}/api/inference/subtasks/{tid}", headers=auth(key))
    assert sub.json() == {"id": tid, "state": "success", "data": dto["output"], "error": None}
    # A model by name (the alias route), answering at once.
    r = await stack.client.post(f"{base}/apps/run", headers=auth(key, True), json={
        "app": "ints:1", "input": {"a": a, "b": b}})
    assert r.status_code == 200 and r.json()["status"] in (2, 7, 10), r.text
    done = await poll(lambda: stack.client.get(f"{base}/tasks/{r.json()['id']}",
                                               headers=auth(key, True)),
                      lambda g: g.json()["status"] == 10)
    assert done.json()["output"]["sum"] == [[5, 7, 9]]
    # Another account sees none of it.
    other = await stack.create_key("other")
    for path in ("", "/status", "/timings", "/logs"):
        g = await stack.client.get(f"{base}/tasks/{tid}{path}", headers=auth(other, True))
        assert g.status_code == 404
    c = await stack.client.post(f"{base}/tasks/{tid}/cancel", headers=auth(other, True))
    assert c.status_code == 404
    # Cancelling a finished task changes nothing.
    c = await stack.client.post(f"{base}/tasks/{tid}/cancel", headers=auth(key, True))
    assert c.json() == {"id": tid, "status": 10, "cancelled": False}


async def test_rate_limit_counts_down_then_429(stack: Stack) -> None:
    model_id = await stack.upload_model("ints", onnx_models.int_model())
    task = await stack.create_task("acme", model_id)
    key = await stack.create_key("acme")
    body = {"app": task, "input": {"a": [[1, 1, 1]], "b": [[1, 1, 1]]}}
    seen = []
    for _ in range(4):
        r = await stack.client.post(f"{stack.base_url}/run", headers=auth(key), json=body)
        assert r.status_code == 200, r.text
        seen.append(int(r.headers["x-ratelimit-remaining"]))
        assert int(r.headers["x-ratelimit-reset"]) > time.time()
    assert seen == [3, 2, 1, 0]
    r = await stack.client.post(f"{stack.base_url}/run", headers=auth(key), json=body)
    assert r.status_code == 429 and r.headers["x-ratelimit-remaining"] == "0"
    assert 890 <= int(r.headers["retry-after"]) <= 900  # one token per 900 s
    # Per key: another key has its own bucket; gets are another class.
    other = await stack.create_key("acme")
    r = await stack.client.post(f"{stack.base_url}/run", headers=auth(other), json=body)
    assert r.status_code == 200
    g = await stack.client.get(f"{stack.base_url}/tasks/{r.json()['data']['id']}",
                               headers=auth(key))
    assert g.status_code == 200 and g.headers["x-ratelimit-limit"] == "1000"


async def test_default_rate_limits_101st_run_is_429(kafka_bootstrap: str | None,
                                                    tmp_path: Path) -> None:
    assert {k: (v.count, v.period_s) for k, v in parse_limits("").items()} == {
        "run": (100, 60), "get": (1000, 60), "upload": (50, 60)}
    # 100 per hour: the same bucket size as the default, without a minute's refill
    # blurring the count on a slow machine.
    async with running_stack(kafka_bootstrap, tmp_path,
                             ingest_overrides={"rate_limits": "run=100/3600"}) as s:
        key = await s.create_key("acme")
        sem = asyncio.Semaphore(8)

        async def one() -> int:
            async with sem:
                r = await s.client.post(f"{s.base_url}/run", headers=auth(key), json={})
                return int(r.headers["x-ratelimit-remaining"])

        remaining = await asyncio.gather(*(one() for _ in range(100)))
        assert sorted(remaining) == list(range(100))
        r = await s.client.post(f"{s.base_url}/run", headers=auth(key), json={})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


async def test_cancel_queued_and_running(kafka_bootstrap: str | None, tmp_path: Path) -> None:
    async with running_stack(kafka_bootstrap, tmp_path,
                             runner_overrides={"executor_threads": 1}) as s:
        slow = await s.create_task("acme", await s.upload_model("slow", onnx_models.loop_model()))
        fast = await s.create_task("acme", await s.upload_model("add", onnx_models.add_model()))
        key = await s.create_key("acme")
        base = s.base_url

        async def run(task: str, inputs: dict[str, Any], wait: bool = False) -> str:
            r = await s.client.post(f"{base}/run", headers=auth(key, True),
                                    json={"app": task, "input": inputs, "wait": wait})
            assert r.status_code == 200, r.text
            return str(r.json()["id"])

        async def status(tid: str) -> int:
            g = await s.client.get(f"{base}/tasks/{tid}/status", headers=auth(key, True))
            return int(g.json()["status"])

        # Warm: the model is loaded, so `running` below means ONNX Runtime is at work.
        warm = await run(slow, {"x": [2.0], "steps": 1}, wait=True)
        assert await status(warm) == 10
        long = {"x": [2.0], "steps": 20_000}  # about 40 s alone
        first = await run(slow, long)
        await poll(lambda: status(first), lambda st: st == 7, 60)
        queued = await run(slow, long)  # waits behind the running one: one executor thread
        # 7 once the runner holds it (waiting for the executor in its batcher).
        assert await status(queued) in (2, 7)
        c = await s.client.post(f"{base}/tasks/{queued}/cancel", headers=auth(key, True))
        assert c.json() == {"id": queued, "status": 12, "cancelled": True}
        logs = (await s.client.get(f"{base}/tasks/{queued}/logs", headers=auth(key))).json()
        messages = [line["message"] for line in logs["data"]["logs"]]
        assert messages[-1].endswith("cancelled before it ran"), messages
        started = time.monotonic()
        c = await s.client.post(f"{base}/tasks/{first}/cancel", headers=auth(key, True))
        assert c.json() == {"id": first, "status": 12, "cancelled": True}
        assert time.monotonic() - started < 5
        t = (await s.client.get(f"{base}/tasks/{first}", headers=auth(key, True))).json()
        assert t["status_name"] == "cancelled" and "terminated" in t["error"]
        # The runner stays healthy and takes the next request.
        r = await s.client.post(f"{base}/run", headers=auth(key, True), json={
            "app": fast, "input": {"x": [[1, 2, 3, 4]]}, "wait": True})
        assert r.json()["status"] == 10 and r.json()["output"] == {"y": [[2, 3, 4, 5]]}


def npy(array: np.ndarray[Any, Any]) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


async def test_upload_file_and_use_it_as_binary_binding(stack: Stack) -> None:
    model = onnx_models.add_model()
    task = await stack.create_task("acme", await stack.upload_model("add", model))
    key = await stack.create_key("acme")
    base = stack.base_url
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    r = await stack.client.post(f"{base}/files", headers=auth(key, True),
                                files={"file": ("x.npy", npy(x), "application/x-npy")})
    assert r.status_code == 201, r.text
    f = r.json()
    assert f["uri"] == f"inferq-file://{f['id']}" and f["size"] == len(npy(x))
    assert f["filename"] == "x.npy" and r.headers["location"] == f"/files/{f['id']}"
    assert (await stack.client.get(f"{base}/files/{f['id']}", headers=auth(key, True))
            ).json() == f
    want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    r = await stack.client.post(f"{base}/run", headers=auth(key, True), json={
        "app": task, "input": {"x": {"fileUrl": f["uri"]}}, "wait": True})
    assert r.json()["status"] == 10, r.text
    np.testing.assert_array_equal(np.array(r.json()["output"]["y"], np.float32), want)
    # The submit API's Binary binding names it the same way.
    r = await stack.submit(task, key, [{"tensorName": "x", "payloadType": "Binary",
                                        "fileUrl": f["uri"]}])
    assert r.json()["state"] == "success", r.text
    # Another account can neither see nor use it.
    other = await stack.create_key("other")
    assert (await stack.client.get(f"{base}/files/{f['id']}", headers=auth(other))
            ).status_code == 404
    otask = await stack.create_task("other", "add:1")
    r = await stack.client.post(f"{base}/run", headers=auth(other, True), json={
        "app": otask, "input": {"x": {"fileUrl": f["uri"]}}})
    assert r.status_code == 404 and r.json()["detail"] == f"file {f['id']} not found"
    d = await stack.client.delete(f"{base}/files/{f['id']}", headers=auth(key, True))
    assert d.json() == {"id": f["id"], "deleted": True}
    assert (await stack.client.get(f"{base}/files/{f['id']}", headers=auth(key))
            ).status_code == 404
    # Bounded: a body over the limit is refused before it is parsed.
    big = await stack.client.post(f"{base}/files", headers=auth(key, True),
                                  files={"file": ("big.npy", b"\0" * 100_000)})
    assert big.status_code == 413


async def test_engines_list_get_and_drain(stack: Stack) -> None:
    key = await stack.create_key("acme")
    base = stack.base_url
    engines = await poll(lambda: stack.client.post(f"{base}/engines/list",
                                                   headers=auth(key, True)),
                         lambda r: len(r.json()) == 1)
    e = engines.json()[0]
    assert e["state"] == "running" and e["id"].startswith("r-") and e["in_flight"] == 0
    assert "CPUExecutionProvider" in e["providers"] and e["device"]
    g = await stack.client.get(f"{base}/engines/{e['id']}", headers=auth(key, True))
    assert g.json() == {**e, "last_seen": g.json()["last_seen"]}
    assert (await stack.client.get(f"{base}/engines/nope", headers=auth(key))).status_code == 404
    d = await stack.client.post(f"{base}/engines/{e['id']}/drain",
                                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert d.status_code == 202 and d.json()["data"] == {"id": e["id"], "action": "drain",
                                                         "accepted": True}
    # It shows draining or is already gone, then is gone.
    await poll(lambda: stack.client.post(f"{base}/engines/list", headers=auth(key, True)),
               lambda r: r.json() == [], 30)
