"""Signed webhooks end to end, on both buses: a real receiver on 127.0.0.1 verifies
every delivery with the ``standardwebhooks`` library; retries, Retry-After, 410,
redirects, dead-lettering, rotation, and the URL guard."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from notifier.signing import sign
from tests import onnx_models
from tests.harness import Stack, running_stack
from tests.notifier.receiver import Receiver, webhook_receiver

GOOD = [{"tensorName": "a", "payloadType": "Json", "payload": "[[1, 2, 3]]", "fileUrl": None},
        {"tensorName": "b", "payloadType": "Json", "payload": "[[4, 5, 6]]", "fileUrl": None}]
FAST = {"allow_private_urls": True, "webhook_schedule_s": (0.0, 0.2, 0.2, 0.2),
        "webhook_jitter": 0.0, "webhook_timeout_s": 5.0}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with webhook_receiver() as r:
        yield r


@pytest.fixture
async def stack(kafka_bootstrap: str | None, tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(kafka_bootstrap, tmp_path, notifier_overrides=FAST) as s:
        yield s


async def secret(s: Stack, account: str, grace: float = 0.0) -> str:
    r = await s.admin("POST", f"/admin/accounts/{account}/webhook-secret",
                      json={"graceSeconds": grace})
    assert r.status_code == 201, r.text
    return str(r.json()["secret"])


async def setup(s: Stack, receiver: Receiver, account: str = "acme") -> tuple[str, str]:
    receiver.secrets = [await secret(s, account)]
    task = await s.create_task(account, await s.upload_model("ints", onnx_models.int_model()))
    return task, await s.create_key(account)


async def submit(s: Stack, task: str, key: str, url: str, **webhook: Any) -> str:
    r = await s.client.post(f"{s.base_url}/api/inference/tasks/{task}",
                            json={"bindings": GOOD, "webhook": {"url": url, **webhook}},
                            headers={"X-Api-Key": key, "Prefer": "respond-async"})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


async def deliveries(s: Stack, sid: str, key: str, n: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while True:
        r = await s.client.get(f"{s.base_url}/api/inference/subtasks/{sid}/deliveries",
                               headers={"X-Api-Key": key})
        assert r.status_code == 200, r.text
        if len(r.json()) >= n or time.monotonic() > deadline:
            return list(r.json())
        await s.client.get(f"{s.base_url}/healthz")  # a bounded poll, not a sleep


async def test_delivery_is_signed_and_carries_the_result(stack: Stack,
                                                         receiver: Receiver) -> None:
    task, key = await setup(stack, receiver)
    sid = await submit(stack, task, key, f"{receiver.base_url}/hook/a")
    [d] = await receiver.wait_for(1)
    assert d.verified["type"] == "subtask.succeeded"
    assert d.verified["data"] == await stack.settled(sid, key)
    assert d.verified["taskId"] == task
    assert d.headers["webhook-id"] == f"msg_{sid}"
    # The library refuses a tampered body, a forged signature and a stale timestamp.
    hook = Webhook(receiver.secrets[0])
    with pytest.raises(WebhookVerificationError):
        hook.verify(d.body.replace(b"success", b"failed!"), d.headers)
    with pytest.raises(WebhookVerificationError):
        hook.verify(d.body, d.headers | {"webhook-signature": "v1,AAAA" + d.headers[
            "webhook-signature"][7:]})
    stale = int(time.time()) - 600
    with pytest.raises(WebhookVerificationError, match="too old"):
        hook.verify(d.body, d.headers | {
            "webhook-timestamp": str(stale),
            "webhook-signature": sign(receiver.secrets[0], f"msg_{sid}", stale, d.body)})
    [attempt] = await deliveries(stack, sid, key, 1)
    assert attempt["outcome"] == "delivered" and attempt["status"] == 204
    assert receiver.unverified == []


async def test_three_failures_then_success_keeps_the_webhook_id(stack: Stack,
                                                                receiver: Receiver) -> None:
    task, key = await setup(stack, receiver)
    receiver.script = [(500, {}), (503, {}), (429, {"Retry-After": "1"})]
    sid = await submit(stack, task, key, f"{receiver.base_url}/hook/b")
    got = await receiver.wait_for(4)
    assert {d.headers["webhook-id"] for d in got} == {f"msg_{sid}"}
    assert got[3].at - got[2].at >= 0.9  # Retry-After: 1 outranks the 0.2 s schedule
    outcomes = [a["outcome"] for a in await deliveries(stack, sid, key, 4)]
    assert outcomes == ["retry", "retry", "retry", "delivered"]


async def test_exhausted_deliveries_are_dead_lettered(stack: Stack, receiver: Receiver) -> None:
    task, key = await setup(stack, receiver)
    receiver.script = [(503, {})] * 4
    sid = await submit(stack, task, key, f"{receiver.base_url}/hook/c")
    attempts = await deliveries(stack, sid, key, 5)
    assert [a["outcome"] for a in attempts] == ["retry"] * 4 + ["deadlettered"]
    assert len(receiver.deliveries) == 4


async def test_final_answers_gone_and_redirects(stack: Stack, receiver: Receiver) -> None:
    task, key = await setup(stack, receiver)
    receiver.script = [(302, {"Location": f"{receiver.base_url}/redirected"}), (400, {}),
                       (410, {})]
    redirected = await submit(stack, task, key, f"{receiver.base_url}/hook/r")
    assert [a["outcome"] for a in await deliveries(stack, redirected, key, 1)] == ["failed"]
    bad = await submit(stack, task, key, f"{receiver.base_url}/hook/r")
    assert [a["status"] for a in await deliveries(stack, bad, key, 1)] == [400]
    gone = await submit(stack, task, key, f"{receiver.base_url}/hook/gone")
    assert [a["outcome"] for a in await deliveries(stack, gone, key, 1)] == ["gone"]
    after = await submit(stack, task, key, f"{receiver.base_url}/hook/gone")
    assert [a["outcome"] for a in await deliveries(stack, after, key, 1)] == ["skipped"]
    assert len(receiver.deliveries) == 3  # no retries of final answers, nothing after 410
    assert receiver.unverified == []  # the redirect target was never fetched


async def test_rotation_signs_with_both_secrets(stack: Stack, receiver: Receiver) -> None:
    task, key = await setup(stack, receiver)
    new = await secret(stack, "acme", grace=3600)
    receiver.secrets.append(new)  # both must verify the same delivery on their own
    await submit(stack, task, key, f"{receiver.base_url}/hook/rot")
    [d] = await receiver.wait_for(1)
    assert len(d.headers["webhook-signature"].split(" ")) == 2


async def test_task_default_webhook_and_bad_webhooks(stack: Stack, receiver: Receiver) -> None:
    receiver.secrets = [await secret(stack, "acme")]
    model = await stack.upload_model("ints", onnx_models.int_model())
    r = await stack.admin("POST", "/admin/tasks", json={
        "account": "acme", "model": model,
        "webhook": {"url": f"{receiver.base_url}/hook/task", "events": ["succeeded"]}})
    assert r.status_code == 201, r.text
    task, key = r.json()["id"], await stack.create_key("acme")
    r = await stack.client.post(f"{stack.base_url}/api/inference/tasks/{task}",
                                json={"bindings": GOOD}, headers={"X-Api-Key": key})
    [d] = await receiver.wait_for(1)
    assert d.path == "/hook/task" and d.verified["data"]["id"] == r.json()["id"]
    for webhook, message in (({"url": "ftp://example.com/x"}, "only http and https"),
                             ({"url": "https://example.com", "events": ["queued"]}, "events"),
                             ({"url": "https://example.com", "extra": 1}, "extra")):
        r = await stack.client.post(f"{stack.base_url}/api/inference/tasks/{task}",
                                    json={"bindings": GOOD, "webhook": webhook},
                                    headers={"X-Api-Key": key})
        assert r.status_code == 400 and message in r.text, r.text
    other_task = await stack.create_task("nosecret", model)
    r = await stack.client.post(f"{stack.base_url}/api/inference/tasks/{other_task}",
                                json={"bindings": GOOD,
                                      "webhook": {"url": "https://example.com/h"}},
                                headers={"X-Api-Key": await stack.create_key("nosecret")})
    assert r.status_code == 400 and "signing secret" in r.text


async def test_guard_refuses_private_targets_without_connecting(
    kafka_bootstrap: str | None, tmp_path: Path, receiver: Receiver,
) -> None:
    guarded = FAST | {"allow_private_urls": False}
    async with running_stack(kafka_bootstrap, tmp_path, notifier_overrides=guarded) as s:
        task, key = await setup(s, receiver)
        port = receiver.base_url.rsplit(":", 1)[1]
        for host in ("127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "2130706433"):
            sid = await submit(s, task, key, f"http://{host}:{port}/hook/guard")
            [a] = await deliveries(s, sid, key, 1)
            assert a["outcome"] == "refused", (host, a)
    assert receiver.deliveries == [] and receiver.unverified == []
