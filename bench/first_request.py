"""The first request after a restart, with and without ``INFERQ_RUNNER_PRELOAD``.

``python -m bench.first_request [model] [--rounds N]`` registers the model (default
``mlp_big``) in an ``inferq up``, then restarts it on the same data directory, by turns
without and with the model preloaded, and prints the time to ready and the latency of
the first and second request after each start.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

from bench import models as bench_models
from bench.procs import Proc, free_port, inferq, wait_http
from bench.targets import Endpoint, register, server_env


def _start(work: Path, env: dict[str, str]) -> tuple[Proc, str, float]:
    port = free_port()
    started = time.perf_counter()
    proc = Proc("inferq-up", inferq(["up", "--port", str(port)]),
                {**server_env(work / "up"), **env}, work)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/readyz", proc, timeout_s=600)
    return proc, base, time.perf_counter() - started


def _call_ms(endpoint: Endpoint) -> float:
    req = urllib.request.Request(endpoint.url, data=endpoint.body, method="POST", headers={
        "Content-Type": "application/json", **endpoint.headers})
    started = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as r:
        body = r.read()
    if endpoint.ok_marker not in body:
        raise RuntimeError(f"unexpected answer: {body[:300]!r}")
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", nargs="?", default="mlp_big")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="inferq-first-"))
    built = bench_models.build([args.model], work / "models")
    proc, base, _ = _start(work, {})
    try:
        registered = register(base, built, "submit")[args.model]
    finally:
        proc.stop()
    path = registered.url.removeprefix(base)
    for _ in range(args.rounds):
        for label, env in (("without preload", {}),
                           ("preloaded", {"INFERQ_RUNNER_PRELOAD": args.model})):
            proc, base, ready_s = _start(work, env)
            try:
                endpoint = replace(registered, url=base + path)
                first, second = _call_ms(endpoint), _call_ms(endpoint)
            finally:
                proc.stop()
            print(f"{args.model} {label:16s} ready {ready_s:5.2f} s   first request "
                  f"{first:7.1f} ms   second {second:6.1f} ms", flush=True)


if __name__ == "__main__":
    main()
