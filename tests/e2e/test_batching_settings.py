"""Dynamic batching per model and per task (task > model > runner default), end to end
over real HTTP on both buses: the admin API and CLI that set it, the batches the runner
then forms (each result's ``batch_size`` and the runner's batch-size histogram), and the
400s for values out of range.

Batching itself depends on timing (requests must meet in the runner's queue), so the
tests never assert it for one burst: they send bounded rounds of concurrent requests
until the runner default has batched, and assert that a limit of 1 never did meanwhile.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from inferq.cli import main as cli_main
from ingest.model_repository import register_repository, repository_task_id
from tests import onnx_models
from tests.harness import ADMIN_TOKEN, Stack, running_stack

#: Concurrent rounds before giving up on seeing a batch; one or two suffice when idle.
MAX_ROUNDS = 20


@pytest.fixture
async def stack(kafka_bootstrap: str | None, tmp_path: Path) -> AsyncIterator[Stack]:
    repo = tmp_path / "repo"
    (repo / "rep" / "1").mkdir(parents=True)
    (repo / "rep" / "1" / "model.onnx").write_bytes(onnx_models.add_model())
    # Rate limits off: the rounds send a few hundred requests with one key. Inline runs
    # off: an Add is fast enough to run on the event loop, where it never holds a slot,
    # so batches would form only from requests that arrive in the same tick (on a busy
    # 2-core CI box, not once in 20 rounds); these tests are about limits on batches.
    async with running_stack(kafka_bootstrap, tmp_path, ingest_overrides={
            "rate_limits": "", "model_repository": repo},
            runner_overrides={"inline_run_us": 0.0}) as s:
        yield s


async def until_batched(burst: Callable[[], Awaitable[bool]]) -> int:
    """Runs ``burst`` (True: the unlimited side batched) until it batches; the rounds."""
    for round_ in range(1, MAX_ROUNDS + 1):
        if await burst():
            return round_
    raise AssertionError(f"no batch larger than 1 formed in {MAX_ROUNDS} concurrent rounds")


async def test_a_task_limit_holds_under_load_while_the_runner_default_batches(
    stack: Stack,
) -> None:
    model = await stack.upload_model("add", onnx_models.add_model())
    key = await stack.create_key("acme")
    tasks = {}
    for name, limit in (("one", 1), ("three", 3), ("default", None)):
        r = await stack.admin("POST", "/admin/tasks", json={
            "account": "acme", "model": model, "name": name, "maxBatchSize": limit})
        assert r.status_code == 201, r.text
        assert r.json()["maxBatchSize"] == limit and r.json()["maxQueueDelayMs"] is None
        tasks[name] = r.json()["id"]
    sizes: dict[str, list[int]] = {name: [] for name in tasks}

    async def one(name: str, i: int) -> int:
        r = await stack.submit(tasks[name], key, [{"tensorName": "x", "payloadType": "Json",
                                                   "payload": json.dumps([[i] * 4])}])
        assert r.json()["data"] == {"y": [[i + 1.0] * 4]}, r.text  # split back one to one
        t = await stack.client.get(f"{stack.base_url}/tasks/{r.json()['id']}/timings",
                                   headers={"X-Api-Key": key, "X-API-Version": "2"})
        assert t.status_code == 200, t.text
        return int(t.json()["batch_size"])

    async def burst() -> bool:
        # The three tasks' requests interleaved: they meet in the same runner queue.
        order = ["one", "three", "default"] * 8
        got = await asyncio.gather(*(one(name, i) for i, name in enumerate(order)))
        for name, size in zip(order, got, strict=True):
            sizes[name].append(size)
        return max(sizes["default"]) > 1

    await until_batched(burst)
    assert set(sizes["one"]) == {1}, sizes
    assert max(sizes["three"]) <= 3, sizes


def batch_histogram(text: str) -> tuple[float, float]:
    """The runner's ``inferq_runner_batch_size``: (requests observed, those run alone)."""
    count = alone = 0.0
    for family in text_string_to_metric_families(text):
        if family.name == "inferq_runner_batch_size":
            for s in family.samples:
                if s.name.endswith("_count"):
                    count = s.value
                elif s.name.endswith("_bucket") and float(s.labels["le"]) == 1.0:
                    alone = s.value
    return count, alone


async def test_v2_runs_under_the_model_setting_unless_the_callers_task_sets_one(
    stack: Stack,
) -> None:
    key = await stack.create_key("acme")
    v2 = {"X-Api-Key": key}

    async def infer(i: int) -> None:
        r = await stack.client.post(f"{stack.base_url}/v2/models/rep/infer", headers=v2,
                                    json={"inputs": [{"name": "x", "shape": [1, 4],
                                                      "datatype": "FP32", "data": [i] * 4}]})
        assert r.status_code == 200, r.text
        assert r.json()["outputs"][0]["data"] == [i + 1.0] * 4

    async def burst(n: int = 24) -> tuple[float, float]:
        """(requests, those run alone) of one concurrent burst, from /metrics."""
        before = batch_histogram((await stack.client.get(f"{stack.base_url}/metrics")).text)
        await asyncio.gather(*(infer(i) for i in range(n)))
        after = batch_histogram((await stack.client.get(f"{stack.base_url}/metrics")).text)
        ran, alone = after[0] - before[0], after[1] - before[1]
        assert ran >= n  # nothing else runs here; more only if Kafka redelivered some
        return ran, alone

    # The repository's model, shared with every account: acme has no task of its own on
    # it, so its v2 calls take the model's setting.
    r = await stack.admin("PATCH", "/admin/models/rep:1", json={"maxBatchSize": 1})
    assert r.status_code == 200, r.text
    assert (r.json()["max_batch_size"], r.json()["max_queue_delay_ms"]) == (1, None)
    for _ in range(3):
        ran, alone = await burst()
        assert alone == ran

    # A task of acme's own on that model beats the model's setting...
    r = await stack.admin("POST", "/admin/tasks", json={"account": "acme", "model": "rep:1",
                                                        "maxBatchSize": 32})
    assert r.status_code == 201, r.text
    task = r.json()["id"]

    async def batched() -> bool:
        ran, alone = await burst()
        return alone < ran

    await until_batched(batched)

    # ... and cleared, the model's applies again.
    r = await stack.admin("PATCH", f"/admin/tasks/{task}", json={"maxBatchSize": None})
    assert r.status_code == 200 and r.json()["maxBatchSize"] is None, r.text
    for _ in range(3):
        ran, alone = await burst()
        assert alone == ran

    # Re-registering the repository (a restart, another replica) keeps what the admin API
    # set on its model and task, with or without a new file.
    repo_task = repository_task_id("rep")
    r = await stack.admin("PATCH", f"/admin/tasks/{repo_task}", json={"maxQueueDelayMs": 4})
    assert r.status_code == 200, r.text
    ctx = stack.app.state.ctx
    root = ctx.settings.model_repository
    records = await stack.count_records(stack.topics.registry)
    await register_repository(ctx.registry, ctx.models, root, "model-repository")
    assert await stack.count_records(stack.topics.registry) == records  # nothing rewritten
    (root / "rep" / "1" / "model.onnx").write_bytes(onnx_models.add_model(8))
    await register_repository(ctx.registry, ctx.models, root, "model-repository")
    models = (await stack.admin("GET", "/admin/models")).json()
    rep = next(m for m in models if m["id"] == "rep:1")
    assert rep["inputs"][0]["shape"] == [-1, 8] and rep["max_batch_size"] == 1
    listed = (await stack.admin("GET", "/admin/tasks?account=model-repository")).json()
    assert [t["maxQueueDelayMs"] for t in listed if t["id"] == repo_task] == [4.0]


async def test_settings_through_the_admin_api_and_cli(
    stack: Stack, capsys: pytest.CaptureFixture[str],
) -> None:
    model = await stack.upload_model("add", onnx_models.add_model())

    async def bad(method: str, path: str, body: Any, *fields: str) -> str:
        r = await stack.admin(method, path, json=body, headers={"X-API-Version": "2"})
        assert r.status_code == 400, r.text
        assert r.headers["content-type"] == "application/problem+json"
        detail = str(r.json()["detail"])
        for field in fields:
            assert field in detail, detail
        return detail

    create = {"account": "acme", "model": model}
    for body, fields in (
        ({"maxBatchSize": 0}, ("maxBatchSize", "1 to 1024")),
        ({"maxBatchSize": 1025}, ("maxBatchSize", "1 to 1024", "1025")),
        ({"maxQueueDelayMs": -1}, ("maxQueueDelayMs", "0 to 10000 milliseconds")),
        ({"maxQueueDelayMs": 10000.5}, ("maxQueueDelayMs", "0 to 10000")),
        ({"maxBatchSize": 0, "maxQueueDelayMs": 20000}, ("maxBatchSize", "maxQueueDelayMs")),
        ({"maxBatchSize": 2.5}, ("$.maxBatchSize",)),
        ({"maxBatchSize": "8"}, ("$.maxBatchSize",)),
    ):
        await bad("POST", "/admin/tasks", create | body, *fields)
    # The version-1 wrapper carries the same message.
    r = await stack.admin("POST", "/admin/tasks", json=create | {"maxBatchSize": 0})
    assert r.status_code == 400 and "maxBatchSize" in r.json()["error"]["message"]
    assert (await stack.admin("GET", "/admin/tasks?account=acme")).json() == []

    r = await stack.admin("POST", "/admin/tasks", json=create | {
        "maxBatchSize": 1024, "maxQueueDelayMs": 0})
    assert r.status_code == 201, r.text
    task = r.json()["id"]
    path = f"/admin/tasks/{task}"

    async def task_limits() -> tuple[Any, Any]:
        [t] = (await stack.admin("GET", "/admin/tasks?account=acme")).json()
        return t["maxBatchSize"], t["maxQueueDelayMs"]

    assert await task_limits() == (1024, 0.0)
    # A merge patch: fields left out stay, null clears; a refused one changes nothing.
    r = await stack.admin("PATCH", path, json={"maxQueueDelayMs": 10000})
    assert r.status_code == 200 and await task_limits() == (1024, 10000.0)
    await bad("PATCH", path, {"maxBatchSize": 4096}, "maxBatchSize", "1 to 1024")
    await bad("PATCH", path, {"maxBatch": 4}, "maxBatch")
    r = await stack.admin("PATCH", path, json={"maxBatchSize": None})
    assert r.status_code == 200 and await task_limits() == (None, 10000.0)
    r = await stack.admin("PATCH", "/admin/tasks/nope", json={"maxBatchSize": 2})
    assert r.status_code == 404

    async def model_limits() -> tuple[Any, Any]:
        [m] = [m for m in (await stack.admin("GET", "/admin/models")).json()
               if m["id"] == model]
        return m["max_batch_size"], m["max_queue_delay_ms"]

    assert await model_limits() == (None, None)
    r = await stack.admin("PATCH", "/admin/models/add", json={"maxBatchSize": 16,
                                                               "maxQueueDelayMs": 1.5})
    assert r.status_code == 200 and await model_limits() == (16, 1.5)  # bare name: :1
    await bad("PATCH", f"/admin/models/{model}", {"maxQueueDelayMs": -2}, "maxQueueDelayMs")
    assert (await stack.admin("PATCH", "/admin/models/add:9", json={})).status_code == 404
    await stack.upload_model("add", onnx_models.add_model())  # the same file again
    assert await model_limits() == (16, 1.5)

    # The CLI: create with limits, list them, update and clear them, models too.
    async def cli(*args: str) -> Any:
        capsys.readouterr()
        await asyncio.to_thread(cli_main, [*args, "--url", stack.base_url,
                                           "--admin-token", ADMIN_TOKEN])
        return json.loads(capsys.readouterr().out)

    made = await cli("tasks", "create", "--account", "cli", "--model", model,
                     "--max-batch-size", "4", "--max-queue-delay-ms", "2.5")
    assert (made["maxBatchSize"], made["maxQueueDelayMs"]) == (4, 2.5)
    [listed] = await cli("tasks", "list", "--account", "cli")
    assert (listed["maxBatchSize"], listed["maxQueueDelayMs"]) == (4, 2.5)
    updated = await cli("tasks", "update", made["id"], "--max-batch-size", "default")
    assert (updated["maxBatchSize"], updated["maxQueueDelayMs"]) == (None, 2.5)
    m = await cli("models", "update", model, "--max-queue-delay-ms", "default")
    assert (m["max_batch_size"], m["max_queue_delay_ms"]) == (16, None)
    assert sorted(x["id"] for x in await cli("models", "list")) == [model, "rep:1"]
    with pytest.raises(SystemExit):  # refused before any call, naming the flag
        await asyncio.to_thread(cli_main, ["tasks", "update", made["id"],
                                           "--max-batch-size", "0"])
    assert "--max-batch-size: expected an integer from 1 to 1024" in capsys.readouterr().err
