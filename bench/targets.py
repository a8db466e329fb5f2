"""What the load generator is pointed at: inferq (embedded, Kafka) and the peer MLServer."""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.models import BenchModel
from bench.procs import ROOT, Proc, free_port, inferq, wait_http

ADMIN = "bench-admin-token-0123456789abcdef"


@dataclass
class Endpoint:
    url: str
    body: bytes
    headers: dict[str, str]
    ok_marker: bytes


@dataclass
class Target:
    name: str
    endpoints: dict[str, Endpoint]
    procs: list[Proc]
    #: The process whose peak RSS is reported (the runner, or the whole server).
    measured: Proc
    extra: dict[str, Any] = field(default_factory=dict)

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()


def _admin(base: str, method: str, path: str, body: bytes | None = None,
           content_type: str = "application/json") -> Any:
    req = urllib.request.Request(base + path, data=body, method=method, headers={
        "Authorization": f"Bearer {ADMIN}", "Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def register(base: str, models: dict[str, BenchModel], dialect: str) -> dict[str, Endpoint]:
    """Uploads ``models`` to the inferq at ``base`` with a key and a task each; how to
    call each in ``dialect``."""
    key = _admin(base, "POST", "/admin/keys", json.dumps({"account": "bench"}).encode())["key"]
    out: dict[str, Endpoint] = {}
    for name, m in models.items():
        rec = _admin(base, "POST", f"/admin/models?name={name}&version=1", m.path.read_bytes(),
                     "application/octet-stream")
        task = _admin(base, "POST", "/admin/tasks", json.dumps(
            {"account": "bench", "model": rec["id"], "fillBindingsViaApi": True}).encode())
        if dialect == "v2-binary":
            body, header_length = m.v2_binary_body()
            out[name] = Endpoint(f"{base}/v2/models/{name}/infer", body, {
                "X-Api-Key": key, "Content-Type": "application/octet-stream",
                "Inference-Header-Content-Length": str(header_length)}, b'"outputs"')
        elif dialect == "v2":
            out[name] = Endpoint(f"{base}/v2/models/{name}/infer", m.v2_body(),
                                 {"X-Api-Key": key}, b'"outputs"')
        else:
            out[name] = Endpoint(f"{base}/api/inference/tasks/{task['id']}", m.submit_body(),
                                 {"X-Api-Key": key}, b'"success"')
    return out


def engines(base: str, wait_s: float = 10.0) -> str:
    """The live runners as the engines API shows them: device and execution providers
    (which of TensorRT, CUDA and CPU really loaded), so a table says what ran. A runner's
    first heartbeat may reach ingest a moment after it is ready: asked again for up to
    ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        listed = _admin(base, "POST", "/engines/list")
        if isinstance(listed, dict):  # the tasks API's version-1 wrapper
            listed = listed["data"]
        if listed or time.monotonic() > deadline:
            return "; ".join(f"{e['device']} ({', '.join(e['providers'])})"
                             for e in listed) or "no runner listed"
        time.sleep(0.2)


def server_env(data_dir: Path) -> dict[str, str]:
    """The environment every inferq process of the bench runs with."""
    return {"INFERQ_ADMIN_TOKEN": ADMIN, "INFERQ_DATA_DIR": str(data_dir),
            "INFERQ_LOG_LEVEL": "WARNING", "INFERQ_RUNNER_PORT": "0",
            # A benchmark measures the pipeline, not the per-key rate limiter.
            "INFERQ_RATE_LIMITS": ""}


def embedded(models: dict[str, BenchModel], work: Path, dialect: str,
             env: dict[str, str]) -> Target:
    port = free_port()
    proc = Proc("inferq-up", inferq(["up", "--port", str(port)]),
                {**server_env(work / "up"), **env}, work)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/readyz", proc)
        target = Target("inferq embedded", register(base, models, dialect), [proc], proc)
        target.extra["engines"] = engines(base)
        return target
    except BaseException:
        proc.stop()
        raise


def kafka(models: dict[str, BenchModel], work: Path, dialect: str, bootstrap: str,
          env: dict[str, str]) -> Target:
    port, rport = free_port(), free_port()
    common = {**server_env(work / "kafka"), "INFERQ_KAFKA_BOOTSTRAP": bootstrap,
              "INFERQ_TOPIC_PREFIX": f"bench{port}.", **env}
    procs: list[Proc] = []
    try:
        ingest = Proc("inferq-ingest", inferq(["ingest", "--port", str(port)]), common, work)
        procs.append(ingest)
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/readyz", ingest)
        runner = Proc("inferq-runner", inferq(["runner", "--port", str(rport)]), common, work)
        procs.append(runner)
        wait_http(f"http://127.0.0.1:{rport}/readyz", runner)
        target = Target("inferq kafka", register(base, models, dialect), procs, runner)
        target.extra["engines"] = engines(base)
        return target
    except BaseException:
        for p in reversed(procs):
            p.stop()
        raise


RUNTIME = '''
import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OrtRuntime(MLModel):
    """One onnxruntime session, CPU, one intra-op thread (as the peers were measured)."""

    async def load(self) -> bool:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(self.settings.parameters.extra.get("threads", 1))
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(self.settings.parameters.uri, opts,
                                            providers=["CPUExecutionProvider"])
        self.names = [o.name for o in self.session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {i.name: NumpyCodec.decode_input(i) for i in payload.inputs}
        outs = self.session.run(self.names, feeds)
        return InferenceResponse(model_name=self.name, outputs=[
            NumpyCodec.encode_output(n, np.asarray(v)) for n, v in zip(self.names, outs)])
'''

PEER_VENV = ROOT / "bench" / ".peer-venv"


def ensure_peer_venv() -> Path:
    """MLServer from PyPI in its own virtualenv (created on first use)."""
    import subprocess

    mlserver = PEER_VENV / "bin" / "mlserver"
    if not mlserver.exists():
        print(f"creating the peer's virtualenv in {PEER_VENV} (MLServer 1.7 from PyPI)...",
              file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(PEER_VENV / "bin" / "pip"), "install", "-q", "mlserver==1.7.1",
                        "onnxruntime", "numpy"], check=True)
    return mlserver


def mlserver(models: dict[str, BenchModel], work: Path, batching: bool) -> Target:
    exe = ensure_peer_venv()
    root = work / ("mlserver-batch" if batching else "mlserver")
    root.mkdir(parents=True, exist_ok=True)
    (root / "ort_runtime.py").write_text(RUNTIME)
    port = free_port()
    (root / "settings.json").write_text(json.dumps({
        "http_port": port, "grpc_port": free_port(), "metrics_port": free_port(),
        "parallel_workers": 0, "debug": False, "metrics_endpoint": None}))
    for name, m in models.items():
        d = root / name
        d.mkdir(exist_ok=True)
        settings: dict[str, Any] = {"name": name, "implementation": "ort_runtime.OrtRuntime",
                                    "parameters": {"uri": str(m.path)}}
        if batching:
            settings.update(max_batch_size=32, max_batch_time=0.002)
        (d / "model-settings.json").write_text(json.dumps(settings))
    proc = Proc("mlserver" + ("-batch" if batching else ""), [str(exe), "start", str(root)],
                {"PYTHONPATH": str(root)}, work, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/v2/health/ready", proc, timeout_s=120)
        for name in models:
            wait_http(f"{base}/v2/models/{name}/ready", proc, timeout_s=60)
    except BaseException:
        proc.stop()
        raise
    label = "MLServer 1.7 " + ("adaptive batching 32/2 ms" if batching else "no batching")
    return Target(label, {n: Endpoint(f"{base}/v2/models/{n}/infer", m.v2_body(), {},
                                      b'"outputs"') for n, m in models.items()}, [proc], proc)
