"""One ingest and two runner OS processes on Kafka: load, then a runner SIGKILLed mid-flight."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests import onnx_models
from tests.conftest import free_port
from tests.harness import ADMIN_TOKEN
from tests.metrics_text import samples, value
from tests.procs import Procs, kafka_env


@pytest.fixture
def cluster(tansu: str, tmp_path: Path) -> Iterator[tuple[Procs, str, dict[str, int]]]:
    # 500 runs from one key within seconds: far over the default per-key rate limit.
    env = kafka_env(tansu, tmp_path, INFERQ_RATE_LIMITS="run=100000/60")
    procs = Procs(tmp_path, env)
    ports = {"ingest": free_port(), "r1": free_port(), "r2": free_port()}
    try:
        procs.start("ingest", "ingest", "--port", str(ports["ingest"]))
        procs.wait_ready("ingest", f"http://127.0.0.1:{ports['ingest']}/readyz")
        for name in ("r1", "r2"):
            procs.start(name, "runner", "--port", str(ports[name]), INFERQ_RUNNER_ID=name)
        for name in ("r1", "r2"):
            procs.wait_ready(name, f"http://127.0.0.1:{ports[name]}/readyz")
        yield procs, f"http://127.0.0.1:{ports['ingest']}", ports
    finally:
        procs.stop_all()


def consumed(port: int) -> float:
    """Results this runner has published, from its own /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("inferq_runner_results_total{"))


async def test_two_runners_share_load_and_survive_sigkill(
    cluster: tuple[Procs, str, dict[str, int]]
) -> None:
    procs, base, ports = cluster
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=200)) as c:
        r = await c.post(f"{base}/admin/models?name=ints&version=1",
                         content=onnx_models.int_model(), headers=admin)
        assert r.status_code == 201, r.text
        r = await c.post(f"{base}/admin/tasks", headers=admin,
                         json={"account": "acme", "model": "ints:1"})
        task = r.json()["id"]
        key = (await c.post(f"{base}/admin/keys", headers=admin,
                            json={"account": "acme"})).json()["key"]

        async def one(i: int) -> None:
            a = [[i, i + 1, i + 2]]
            b = [[2, 3, -i]]
            r = await c.post(f"{base}/api/inference/tasks/{task}", headers={"X-Api-Key": key},
                             json={"bindings": [
                                 {"tensorName": "a", "payloadType": "Json",
                                  "payload": json.dumps(a)},
                                 {"tensorName": "b", "payloadType": "Json",
                                  "payload": json.dumps(b)}]})
            body = r.json()
            assert r.status_code == 200 and body["state"] == "success", body
            want = (np.array(a) + np.array(b)).tolist()
            assert body["data"]["sum"] == want, (i, body)
            assert body["data"]["prod"] == (np.array(a) * np.array(b)).tolist()

        await asyncio.gather(*(one(i) for i in range(200)))
        # Both runners took part (the requests topic has 4 partitions, 2 each).
        assert consumed(ports["r1"]) > 0 and consumed(ports["r2"]) > 0
        assert consumed(ports["r1"]) + consumed(ports["r2"]) == 200
        # Each process describes itself: its memory and the collector's pauses.
        for port in (ports["ingest"], ports["r1"]):
            described = samples((await c.get(f"http://127.0.0.1:{port}/metrics")).text)
            assert value(described, "process_resident_memory_bytes") > 20 * 2**20
            for g in "012":  # value() fails naming a series that is not there
                value(described, "inferq_gc_pause_seconds_count", generation=g)

        # Now kill r2 while it works through its share; every request still gets its
        # answer, r1 taking over r2's partitions from their last committed offsets.
        r1_before, r2_before = consumed(ports["r1"]), consumed(ports["r2"])
        second = [asyncio.create_task(one(1000 + i)) for i in range(200)]
        r2_at_kill = r2_before
        for _ in range(1000):
            r2_at_kill = consumed(ports["r2"])
            if r2_at_kill >= r2_before + 10:
                break
            await asyncio.sleep(0.005)
        procs.procs["r2"].send_signal(signal.SIGKILL)
        assert r2_at_kill - r2_before < 150, "r2 finished its share before it could be killed"
        await asyncio.wait_for(asyncio.gather(*second), 120)
        assert procs.procs["r2"].wait(5) == -signal.SIGKILL
        # r1 answered everything r2 did not (r2 may have published a few more results
        # between the last reading and the kill: at most what it held).
        r1_delta = consumed(ports["r1"]) - r1_before
        assert r1_delta >= 200 - (r2_at_kill - r2_before) - 64

        # SIGTERM drains: r1 finishes what it holds, commits, leaves, exits 0; a new
        # runner then takes what was still queued. Every request is answered.
        r1_now = consumed(ports["r1"])
        third = [asyncio.create_task(one(2000 + i)) for i in range(100)]
        for _ in range(1000):
            if consumed(ports["r1"]) >= r1_now + 5:
                break
            await asyncio.sleep(0.005)
        procs.procs["r1"].send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(procs.procs["r1"].wait, 60) == 0, procs.log("r1")
        ports["r3"] = free_port()
        procs.start("r3", "runner", "--port", str(ports["r3"]), INFERQ_RUNNER_ID="r3")
        await asyncio.wait_for(asyncio.gather(*third), 120)
        assert "runner stopped" in procs.log("r1")
