"""Two ``inferq ingest`` processes on Kafka enforce one rate limit together.

README's bound: with steady membership, N replicas together admit at most
``limit + limit·T/period`` calls in any T seconds (each holds ``limit/N`` of the bucket,
knowing N from the replicas' beats). Calls spread across both replicas here, for two
classes, must stay within it; each replica counts its own share down to 0 and refuses
the rest with 429 ``rate_limited`` and ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from pathlib import Path

import httpx

from tests import onnx_models
from tests.conftest import free_port
from tests.harness import ADMIN_TOKEN
from tests.procs import Procs, kafka_env

RUN, GET, PERIOD = 6, 10, 3600
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def sees_two_replicas(c: httpx.AsyncClient, base: str, timeout_s: float = 30) -> None:
    """Polls until this replica holds half a bucket: a fresh key's first call (any key
    has a bucket, valid or not: probes cost the test's key nothing) leaves
    ``GET/2 - 1`` tokens, not ``GET - 1``."""
    deadline = time.monotonic() + timeout_s
    while True:
        r = await c.get(f"{base}/tasks/probe", headers={"X-Api-Key": f"probe-{uuid.uuid4()}"})
        assert r.status_code == 401, r.text
        if int(r.headers["x-ratelimit-remaining"]) == GET // 2 - 1:
            return
        assert time.monotonic() < deadline, f"{base} never counted 2 replicas"
        await asyncio.sleep(0.1)


async def test_two_ingest_processes_share_the_limit(tansu: str, tmp_path: Path) -> None:
    env = kafka_env(tansu, tmp_path,
                    INFERQ_RATE_LIMITS=f"run={RUN}/{PERIOD},get={GET}/{PERIOD}")
    procs = Procs(tmp_path, env)
    ports = {"a": free_port(), "b": free_port()}
    bases = [f"http://127.0.0.1:{ports['a']}", f"http://127.0.0.1:{ports['b']}"]
    try:
        for name, port in ports.items():
            procs.start(name, "ingest", "--port", str(port))
        for name, port in ports.items():
            procs.wait_ready(name, f"http://127.0.0.1:{port}/readyz")
        async with httpx.AsyncClient(timeout=30) as c:
            await asyncio.gather(*(sees_two_replicas(c, base) for base in bases))
            a, b = bases
            key = (await c.post(f"{a}/admin/keys", headers=ADMIN, json={"account": "acme"})
                   ).json()["key"]
            r = await c.post(f"{a}/admin/models?name=ints&version=1", headers=ADMIN,
                             content=onnx_models.int_model())
            task = (await c.post(f"{a}/admin/tasks", headers=ADMIN, json={
                "account": "acme", "model": r.json()["id"]})).json()["id"]
            deadline = time.monotonic() + 30  # b replays the registry: it knows the task
            while task not in {t["id"] for t in (await c.get(f"{b}/admin/tasks",
                                                             headers=ADMIN)).json()}:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)

            auth = {"Authorization": f"Bearer {key}", "X-API-Version": "2"}
            body = {"app": task, "input": {"a": [[1, 2, 3]], "b": [[1, 1, 1]]}}
            started = time.monotonic()
            runs = [await c.post(f"{bases[i % 2]}/run", headers=auth, json=body)
                    for i in range(4 * RUN)]
            tid = next(r.json()["id"] for r in runs if r.status_code == 200)
            gets = [await c.get(f"{bases[i % 2]}/tasks/{tid}", headers=auth)
                    for i in range(4 * GET)]
            elapsed = time.monotonic() - started

        for limit, calls in ((RUN, runs), (GET, gets)):
            admitted = [r for r in calls if r.status_code != 429]
            assert all(r.status_code == 200 for r in admitted), [r.text for r in admitted]
            # README's bound for steady membership; each replica admitted its whole share.
            assert len(admitted) <= limit + math.ceil(limit * elapsed / PERIOD)
            for replica in (0, 1):
                mine = calls[replica::2]
                ok = [r for r in mine if r.status_code == 200]
                assert len(ok) == limit // 2
                # Headers count down on each replica: its share, to 0.
                assert [int(r.headers["x-ratelimit-remaining"]) for r in ok] == list(
                    range(limit // 2 - 1, -1, -1))
                for r in mine[len(ok):]:
                    assert r.status_code == 429, r.text
                    assert r.headers["content-type"] == "application/problem+json"
                    assert r.json()["type"].endswith("/rate_limited")
                    assert r.headers["x-ratelimit-remaining"] == "0"
                    assert r.headers["x-ratelimit-limit"] == str(limit)
                    # One token of a share refills in 2·period/limit seconds.
                    assert 1 <= int(r.headers["retry-after"]) <= math.ceil(2 * PERIOD / limit)
    finally:
        procs.stop_all()
    for name in ports:
        assert procs.procs[name].returncode == 0, procs.log(name)
