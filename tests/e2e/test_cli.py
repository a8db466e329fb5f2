"""The `inferq` command: --help everywhere, and keys/tasks against a running `inferq up`."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from tests import onnx_models
from tests.conftest import free_port
from tests.e2e.test_up_command import INFERQ, start_up, stop

COMMANDS = [[], ["up"], ["ingest"], ["runner"], ["notifier"], ["keys"], ["keys", "create"],
            ["keys", "list"], ["keys", "revoke"], ["keys", "rotate"], ["tasks"],
            ["tasks", "create"], ["tasks", "list"], ["tasks", "update"], ["models"],
            ["models", "list"], ["models", "update"], ["topics"], ["topics", "create"],
            ["topics", "describe"], ["status"]]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a) or "inferq")
def test_help_everywhere(args: list[str]) -> None:
    out = subprocess.run([INFERQ, *args, "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: inferq")


def test_topics_create_needs_kafka() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERQ_")}
    out = subprocess.run([INFERQ, "topics", "create"], capture_output=True, text=True,
                         timeout=30, env=env)
    assert out.returncode != 0 and "INFERQ_KAFKA_BOOTSTRAP" in out.stderr


def test_topics_create_on_kafka(tansu: str) -> None:
    prefix = f"cli{uuid.uuid4().hex[:6]}."
    env = {**os.environ, "INFERQ_KAFKA_BOOTSTRAP": tansu, "INFERQ_TOPIC_PREFIX": prefix}
    out = subprocess.run([INFERQ, "topics", "create", "--partitions", "3"], capture_output=True,
                         text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split("\t", 1) for line in out.stdout.splitlines())
    assert "partitions=3" in lines[prefix + "requests"]
    assert "cleanup.policy=compact" in lines[prefix + "registry"]
    assert "cleanup.policy=compact,delete" in lines[prefix + "results"]


def test_keys_and_tasks_through_the_cli(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    proc, _ = start_up(data_dir, port, None, f"cli{uuid.uuid4().hex[:6]}.")
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERQ_")}
    env.update({"INFERQ_URL": base, "INFERQ_DATA_DIR": str(data_dir)})

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([INFERQ, *args], capture_output=True, text=True, timeout=60,
                              env=env)

    try:
        made = cli("keys", "create", "--account", "acme", "--name", "ci")
        assert made.returncode == 0, made.stderr
        key = json.loads(made.stdout)["key"]
        assert "shown once" in made.stderr

        model = tmp_path / "ints.onnx"
        model.write_bytes(onnx_models.int_model())
        t = cli("tasks", "create", "--account", "acme", "--model-file", str(model))
        assert t.returncode == 0, t.stderr
        task = json.loads(t.stdout)
        assert task["model"] == "ints:1" and task["submitUrl"].startswith(base)

        body = {"bindings": [
            {"tensorName": "a", "payloadType": "Json", "payload": "[[1, 2, 3]]"},
            {"tensorName": "b", "payloadType": "Json", "payload": "[[1, 1, 1]]"}]}
        r = httpx.post(task["submitUrl"], json=body, headers={"X-Api-Key": key}, timeout=30)
        assert r.json()["data"] == {"sum": [[2, 3, 4]], "prod": [[1, 2, 3]]}

        listed = cli("tasks", "list", "--account", "acme")
        assert [x["id"] for x in json.loads(listed.stdout)] == [task["id"]]
        keys = cli("keys", "list")
        assert key not in keys.stdout
        key_id = key.split("-")[1]
        assert any(k["keyId"] == key_id for k in json.loads(keys.stdout))

        assert cli("keys", "revoke", key_id).returncode == 0
        r = httpx.post(task["submitUrl"], json=body, headers={"X-Api-Key": key}, timeout=30)
        assert r.status_code == 401

        bad = cli("keys", "revoke", "nope1234")
        assert bad.returncode != 0 and "HTTP 404" in bad.stderr
        wrong = subprocess.run([INFERQ, "keys", "list", "--admin-token", "x" * 20],
                               capture_output=True, text=True, timeout=60, env=env)
        assert wrong.returncode != 0 and "HTTP 401" in wrong.stderr
    finally:
        assert stop(proc) == 0
    down = cli("keys", "list")
    assert down.returncode != 0 and "cannot reach inferq" in down.stderr
