"""`inferq up` as a user runs it: a real process, its printed curl line pasted into bash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from tests.conftest import free_port

INFERQ = str(Path(sys.executable).with_name("inferq"))


def start_up(data_dir: Path, port: int, kafka: str | None, prefix: str
             ) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERQ_")}
    env.update({"INFERQ_TOPIC_PREFIX": prefix, "INFERQ_KAFKA_FETCH_MAX_WAIT_MS": "5",
                "INFERQ_RUNNER_PORT": "0", "INFERQ_KAFKA_SESSION_TIMEOUT_MS": "3000"})
    if kafka:
        env["INFERQ_KAFKA_BOOTSTRAP"] = kafka
    log = data_dir.parent / f"up-{port}.log"
    with open(log, "ab") as err:
        proc = subprocess.Popen(
            [INFERQ, "up", "--host", "127.0.0.1", "--port", str(port), "--data-dir",
             str(data_dir)],
            stdout=subprocess.PIPE, stderr=err, text=True, env=env,
        )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("curl ") and "X-Api-Key" in line:
            return proc, line.strip()
    proc.kill()
    raise AssertionError(f"inferq up printed no curl line: {log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(30)


def test_up_prints_a_working_curl_line_and_keeps_state(kafka_bootstrap: str | None,
                                                      tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    prefix = f"up{uuid.uuid4().hex[:8]}."
    port = free_port()
    proc, line = start_up(data_dir, port, kafka_bootstrap, prefix)
    try:
        out = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=30)
        first = json.loads(out.stdout)
        assert first["state"] == "success" and first["error"] is None
        logits = first["data"]["output_logits"]
        assert len(logits) == 1 and len(logits[0]) == 4
        key = line.split("X-Api-Key: ")[1].split("'")[0]
        health = httpx.get(f"http://127.0.0.1:{port}/readyz")
        assert health.status_code == 200
    finally:
        assert stop(proc) == 0
    # The admin token and the demo key live in the data dir, readable by the owner only.
    assert (data_dir / "admin-token").stat().st_mode & 0o077 == 0
    assert (data_dir / "demo.json").stat().st_mode & 0o077 == 0

    # A later start prints the same line and still knows the earlier result.
    proc, again = start_up(data_dir, port, kafka_bootstrap, prefix)
    try:
        assert again == line
        r = httpx.get(f"http://127.0.0.1:{port}/api/inference/subtasks/{first['id']}",
                      headers={"X-Api-Key": key})
        assert r.status_code == 200 and r.json() == first
    finally:
        assert stop(proc) == 0
