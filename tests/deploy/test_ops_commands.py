"""`inferq topics create|describe` and `inferq status`: against the real broker, and with
clear errors (non-zero exit) when the broker is unreachable or not configured."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import pytest

from tests import onnx_models
from tests.conftest import free_port
from tests.harness import running_stack


async def inferq(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "inferq", *args, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("command", [["status"], ["topics", "describe"], ["topics", "create"]])
async def test_unreachable_broker_is_a_clear_error(command: list[str]) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    rc, out, err = await inferq(*command, env={"INFERQ_KAFKA_BOOTSTRAP": address})
    assert rc != 0 and out == ""
    assert f"inferq: cannot reach Kafka at {address}" in err, err
    assert "Traceback" not in err
    assert time.monotonic() - started < 45


@pytest.mark.parametrize("command", [["status"], ["topics", "describe"]])
async def test_without_bootstrap_the_command_says_what_it_needs(command: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "INFERQ_KAFKA_BOOTSTRAP"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "inferq", *command, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode != 0 and "needs INFERQ_KAFKA_BOOTSTRAP" in err.decode()


async def test_describe_and_status_on_a_live_stack(tansu: str, tmp_path: Path) -> None:
    async with running_stack(tansu, tmp_path) as stack:
        prefix = stack.bus.topic_prefix
        env = {"INFERQ_KAFKA_BOOTSTRAP": tansu, "INFERQ_TOPIC_PREFIX": prefix}
        task = await stack.create_task(
            "acme", await stack.upload_model("add", onnx_models.add_model()))
        key = await stack.create_key("acme")
        r = await stack.submit(task, key, [{"tensorName": "x", "payloadType": "Json",
                                            "payload": "[[1, 2, 3, 4]]"}])
        assert r.json()["state"] == "success", r.text

        rc, out, err = await inferq("topics", "describe", "--json", env=env)
        assert rc == 0, err
        topics = {t["topic"]: t for t in json.loads(out)}
        assert all(t["exists"] for t in topics.values())
        assert topics[prefix + "requests"]["partitions"] == stack.bus.partitions
        assert topics[prefix + "registry"]["partitions"] == 1
        rc, text, err = await inferq("topics", "describe", env=env)
        assert rc == 0 and f"{prefix}results\tpartitions={stack.bus.partitions}" in text, err

        group = f"g-{prefix}"  # the harness's runner group
        deadline = time.monotonic() + 30
        while True:  # the runner commits after the result: poll, bounded
            rc, out, err = await inferq("status", "--json", "--group", group, env=env)
            assert rc == 0, err
            report = json.loads(out)
            if report["lag"]["total"] == 0 and report["runners"]:
                break
            assert time.monotonic() < deadline, report
            await asyncio.sleep(0.2)
        assert report["bus"] == {"kafka": tansu, "reachable": True}
        (runner,) = report["runners"]
        assert runner["runner_id"].startswith("r-") and runner["state"] == "running"
        assert report["lag"]["topic"] == prefix + "requests"
        assert set(report["lag"]["partitions"]) == {str(p) for p in range(stack.bus.partitions)}
        rc, text, _ = await inferq("status", "--group", group, env=env)
        assert rc == 0 and "reachable" in text and runner["runner_id"] in text

    # A prefix nobody provisioned: describe names the missing topics and fails.
    rc, text, _ = await inferq("topics", "describe",
                               env={"INFERQ_KAFKA_BOOTSTRAP": tansu,
                                    "INFERQ_TOPIC_PREFIX": "never-made."})
    assert rc == 1 and "never-made.requests\tMISSING" in text
