"""inferq services as real OS processes (``inferq ingest``, ``inferq runner``) for tests.

Each process logs to ``<tmp>/<name>.log``; readiness is polled on its ``/readyz`` with a
bounded deadline. ``stop_all`` sends SIGTERM (the services drain and exit 0) and kills
whatever is still running after 30 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from tests.harness import ADMIN_TOKEN, SESSION_TIMEOUT_MS

INFERQ = str(Path(sys.executable).with_name("inferq"))


def kafka_env(bootstrap: str, tmp: Path, **extra: str) -> dict[str, str]:
    """A clean environment for services sharing topics (a fresh prefix) on ``bootstrap``.

    ``INFERQ_KAFKA_SESSION_TIMEOUT_MS`` is short: the test broker makes a consumer
    group's first member wait about half of it, and a leaving runner's partitions move
    within it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERQ_")}
    env.update({
        "INFERQ_KAFKA_BOOTSTRAP": bootstrap,
        "INFERQ_TOPIC_PREFIX": f"mp{uuid.uuid4().hex[:8]}.",
        "INFERQ_KAFKA_FETCH_MAX_WAIT_MS": "5",
        "INFERQ_KAFKA_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
        "INFERQ_PARTITIONS": "4",
        "INFERQ_ADMIN_TOKEN": ADMIN_TOKEN,
        "INFERQ_DATA_DIR": str(tmp / "data"),
        "INFERQ_MODEL_DIR": str(tmp / "models"),
        "INFERQ_HEARTBEAT_S": "1",
        **extra,
    })
    return env


class Procs:
    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp = tmp
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str, **extra_env: str) -> subprocess.Popen[bytes]:
        with open(self.tmp / f"{name}.log", "ab") as log:
            proc = subprocess.Popen([INFERQ, *args], env={**self.env, **extra_env},
                                    stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")[-3000:]

    def wait_ready(self, name: str, url: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.procs[name].poll() is not None:
                raise AssertionError(f"{name} exited: {self.log(name)}")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{name} not ready: {self.log(name)}")

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
