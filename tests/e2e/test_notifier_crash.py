"""A webhook delivery survives SIGKILL of the notifier's process, on both buses.

`inferq up` runs as a real OS process (ingest, runner and notifier; on Kafka or on the
embedded bus with a data dir). The receiver fails three times; right after the first
failed attempt the process is SIGKILLed, between attempts. The restarted notifier finds
the result's offset uncommitted and resumes: the receiver sees the same webhook-id until
it answers 2xx.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests import onnx_models
from tests.conftest import free_port
from tests.notifier.receiver import webhook_receiver

TOKEN = "crash-test-admin-token-0123456789"
GOOD = [{"tensorName": "a", "payloadType": "Json", "payload": "[[1, 2, 3]]", "fileUrl": None},
        {"tensorName": "b", "payloadType": "Json", "payload": "[[4, 5, 6]]", "fileUrl": None}]


@contextmanager
def inferq_up(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "inferq", "up"], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


async def wait_ready(client: httpx.AsyncClient, base: str, proc: subprocess.Popen[bytes],
                     log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if (await client.get(f"{base}/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)  # polling a child process's readiness, bounded above
    raise AssertionError(f"inferq up not ready: {log.read_text()[-3000:]}")


async def test_delivery_completes_after_sigkill(kafka_bootstrap: str | None,
                                                tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERQ_")} | {
        "INFERQ_PORT": str(port), "INFERQ_DATA_DIR": str(tmp_path / "data"),
        "INFERQ_ADMIN_TOKEN": TOKEN, "INFERQ_ALLOW_PRIVATE_URLS": "1",
        "INFERQ_WEBHOOK_SCHEDULE_S": "0,2,0.2,0.2,0.2", "INFERQ_WEBHOOK_JITTER": "0",
        "INFERQ_PROVIDERS": "CPUExecutionProvider", "INFERQ_PARTITIONS": "2",
        "INFERQ_TOPIC_PREFIX": f"k{uuid.uuid4().hex[:10]}.",
        "INFERQ_KAFKA_SESSION_TIMEOUT_MS": "2000", "INFERQ_LOG_LEVEL": "WARNING",
    }
    if kafka_bootstrap:
        env["INFERQ_KAFKA_BOOTSTRAP"] = kafka_bootstrap
    log = tmp_path / "inferq.log"
    admin = {"Authorization": f"Bearer {TOKEN}"}
    async with webhook_receiver() as receiver, httpx.AsyncClient(timeout=30) as client:
        receiver.script = [(500, {}), (500, {}), (500, {})]
        with inferq_up(env, log) as proc:
            await wait_ready(client, base, proc, log)
            r = await client.post(f"{base}/admin/accounts/acme/webhook-secret", headers=admin,
                                  json={})
            receiver.secrets = [r.json()["secret"]]
            r = await client.post(f"{base}/admin/models?name=ints&version=1", headers=admin,
                                  content=onnx_models.int_model())
            r = await client.post(f"{base}/admin/tasks", headers=admin,
                                  json={"account": "acme", "model": r.json()["id"]})
            task = r.json()["id"]
            key = (await client.post(f"{base}/admin/keys", headers=admin,
                                     json={"account": "acme"})).json()["key"]
            r = await client.post(f"{base}/api/inference/tasks/{task}",
                                  json={"bindings": GOOD, "webhook": {
                                      "url": f"{receiver.base_url}/hook/crash"}},
                                  headers={"X-Api-Key": key, "Prefer": "respond-async"})
            assert r.status_code == 202, r.text
            sid = r.json()["id"]
            await receiver.wait_for(1)
            proc.send_signal(signal.SIGKILL)  # the next attempt is 2 s away
            proc.wait(10)
        assert len(receiver.deliveries) == 1
        with inferq_up(env, log) as proc:
            await wait_ready(client, base, proc, log)
            got = await receiver.wait_for(4, timeout_s=60)
            assert {d.headers["webhook-id"] for d in got} == {f"msg_{sid}"}
            assert all(d.verified["data"]["id"] == sid for d in got)
            assert receiver.script == [] and receiver.unverified == []
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
