"""`python -m bench` (`make bench`): inferq against raw ONNX Runtime and MLServer.

Closed-loop HTTP load (aiohttp + uvloop, keep-alive, one request in flight per client) at
1, 8 and 64 clients against `inferq up` on the embedded bus, separate `inferq ingest` and
`inferq runner` processes on Kafka (the tansu test broker, started here), and the peer
MLServer 1.7 (its own virtualenv under bench/.peer-venv); ONNX Runtime called directly
and the broker's own round trip in the same run. inferq up and the MLServer targets are
up together and take turns, run by run, on each cell; Kafka is measured alone. Prints a
Markdown table; with --json also writes the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bench import models as bench_models
from bench.broker import RoundTrip, round_trip
from bench.cpu import CpuMeter
from bench.hotpath import HotPath
from bench.hotpath import measure as hot_path
from bench.hotpath import table as hot_table
from bench.load import closed_loop
from bench.procs import Proc, tansu
from bench.rawort import RawResult, bracket, measure
from bench.report import Row, as_json, breakdown, runners_table, scrape, table
from bench.targets import Target, embedded, kafka, mlserver
from runner.providers import usable_providers
from runner.settings import RunnerSettings


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="tiny,mlp,tokens",
                   help="comma list of tiny, mlp, tokens, mlp_big (default tiny,mlp,tokens)")
    p.add_argument("--big", action="store_true", help="add mlp_big (336 MB, compute-bound)")
    p.add_argument("--clients", default="1,8,64", help="concurrencies (default 1,8,64)")
    p.add_argument("--targets", default="embedded,kafka,peer",
                   help="comma list of embedded, kafka, peer, peer-nobatch, none")
    p.add_argument("--dialect", choices=["submit", "v2", "v2-binary"],
                   default="submit", help="inferq's HTTP dialect under load: the submit API "
                   "(default), v2 JSON, or v2 with the binary tensor data extension both "
                   "ways (what Triton's clients send)")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds not recorded (2)")
    p.add_argument("--duration", type=float, default=8.0, help="seconds recorded (8)")
    p.add_argument("--repeat", type=int, default=1,
                   help="runs per cell, the quiet targets (embedded, peer, peer-nobatch) "
                        "taking turns run by run; the table shows each target's run with "
                        "the median req/s (PERFORMANCE.md's method: 3)")
    p.add_argument("--rtt-waits", default="5",
                   help="fetch_max_wait_ms values for the broker round trip (default 5)")
    p.add_argument("--no-raw", action="store_true", help="skip raw ONNX Runtime")
    p.add_argument("--no-hotpath", action="store_true",
                   help="skip the per-stage hot-path timings (JSON, codecs, hops)")
    p.add_argument("--quick", action="store_true",
                   help="smoke: 0.5 s warm-up, 1.5 s measured")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--env", action="append", default=[],
                   help="NAME=VALUE for the inferq processes (repeatable)")
    args = p.parse_args(argv)
    if args.quick:
        args.warmup, args.duration = 0.5, 1.5
    return args


#: Targets that cost next to nothing while idle (0.2-0.4 % of a core each, measured here
#: over 10 s with tiny and mlp loaded): all are started at once and each cell is
#: measured on them in turn, run by run, so a host whose speed drifts over minutes (a VM
#: here: 10-30 % between runs minutes apart) drifts for all of them alike and their ratios
#: hold. Kafka is measured alone: its idle consumers poll the broker every few ms.
QUIET = ("embedded", "peer", "peer-nobatch")


def start_target(kind: str, built: dict[str, bench_models.BenchModel], work: Path,
                 args: argparse.Namespace, env: dict[str, str],
                 bootstrap: str | None = None) -> tuple[Target, str | None]:
    """A target up and ready, and where its runner's metrics are scraped (if anywhere)."""
    started = time.monotonic()
    metrics: str | None = None
    if kind == "embedded":
        target = embedded(built, work, args.dialect, env)
        metrics = target.endpoints[next(iter(built))].url.split("/api/")[0].split("/v2/")[0]
        metrics += "/metrics"
    elif kind == "kafka":
        assert bootstrap is not None
        target = kafka(built, work, args.dialect, bootstrap, env)
        rport = target.measured.popen.args[-1]  # the runner's --port
        metrics = f"http://127.0.0.1:{rport}/metrics"
    elif kind in ("peer", "peer-nobatch"):
        target = mlserver(built, work, batching=kind == "peer")
    else:
        raise SystemExit(f"unknown target {kind!r}")
    print(f"{target.name}: up in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return target, metrics


def run_once(target: Target, name: str, clients: int, args: argparse.Namespace,
             metrics_url: str | None, broker: Proc | None) -> Row:
    """One closed-loop run; RSS as the run ends (peak: the most so far)."""
    ep = target.endpoints[name]
    before = scrape(metrics_url)
    cpu = CpuMeter(target.procs, broker)
    res = asyncio.run(closed_loop(ep.url, ep.body, ep.headers, clients, args.warmup,
                                  args.duration, ep.ok_marker, cpu.mark))
    print(f"  {target.name:<38} {name:<8} c={clients:<3} {res.rps:9,.0f} req/s  "
          f"p50 {res.pct(50):7.2f} ms  p99 {res.pct(99):7.2f} ms  errors {res.errors}"
          + (f" ({res.first_error[:120]})" if res.errors else ""),
          file=sys.stderr, flush=True)
    stages = breakdown(before, scrape(metrics_url))
    now = target.measured.rss_mib()  # before the peak: VmHWM is never below an earlier VmRSS
    return Row(target.name, name, res, target.measured.peak_rss_mib(), stages,
               rss_now_mib=now, cpu_us=cpu.per_request_us(res.ok))


class Slot(Protocol):
    """Something the bench measures: a name for its rows, and one run of a cell."""

    @property
    def name(self) -> str: ...

    def run(self, model: str, clients: int) -> Row: ...


@dataclass
class Standing:
    """A target up for the whole group."""

    target: Target
    metrics: str | None
    args: argparse.Namespace

    @property
    def name(self) -> str:
        return self.target.name

    def run(self, model: str, clients: int) -> Row:
        return run_once(self.target, model, clients, self.args, self.metrics, None)


@dataclass
class FreshKafka:
    """Ingest and runner on a new broker for every run. The test broker (tansu 0.6, in
    memory) spends more per fetch and produce the more records a partition holds (a
    produce-consume hop: 1.3 ms of its CPU at 700 records, 4 ms at 21,000, 20 ms at
    81,000), so on one broker for the whole bench each model ran slower than the one
    measured before it."""

    built: dict[str, bench_models.BenchModel]
    work: Path
    args: argparse.Namespace
    env: dict[str, str]
    name: str = "inferq kafka"
    #: The engines API's answer from the first start (device and providers).
    engines: str = ""
    _runs: int = field(default=0, init=False)

    def run(self, model: str, clients: int) -> Row:
        self._runs += 1
        work = self.work / f"kafka-run{self._runs}"
        work.mkdir(parents=True)
        broker, bootstrap = tansu(work)
        try:
            target, metrics = start_target("kafka", self.built, work, self.args, self.env,
                                           bootstrap)
            try:
                self.engines = self.engines or str(target.extra.get("engines", ""))
                return run_once(target, model, clients, self.args, metrics, broker)
            finally:
                target.stop()
        finally:
            broker.stop()
            shutil.rmtree(work, ignore_errors=True)  # its copies of the models


def run_group(slots: Sequence[Slot], names: list[str], clients: list[int],
              repeat: int) -> dict[str, list[Row]]:
    """Every cell on every slot, the slots taking turns run by run; each slot's row for a
    cell is its run with the median req/s. The turns go forwards, then backwards (a b c,
    c b a, a b c): a host that slows or speeds up during a round favours no slot for
    being first (in one round in a fixed order, MLServer's tiny p50 at 1 client went
    0.54, 0.61, 0.75 ms while inferq's, always just before it, stayed at 0.49-0.55)."""
    rows: dict[str, list[Row]] = {s.name: [] for s in slots}
    for name in names:
        for c in clients:
            runs: dict[str, list[Row]] = {s.name: [] for s in slots}
            for i in range(max(1, repeat)):
                for slot in (slots if i % 2 == 0 else slots[::-1]):
                    runs[slot.name].append(slot.run(name, c))
            for slot in slots:
                ordered = sorted(runs[slot.name], key=lambda row: row.load.rps)
                rows[slot.name].append(ordered[len(ordered) // 2])
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    names = [n for n in args.models.split(",") if n]
    if args.big and "mlp_big" not in names:
        names.append("mlp_big")
    clients = [int(c) for c in args.clients.split(",")]
    targets = [t for t in args.targets.split(",") if t and t != "none"]
    env = dict(e.split("=", 1) for e in args.env)
    work = Path(tempfile.mkdtemp(prefix="inferq-bench-"))
    print(f"bench: work dir {work}; {os.cpu_count()} CPUs; models {names}; clients {clients}",
          file=sys.stderr)
    built = bench_models.build(names, work / "models")
    model_mib = {n: m.path.stat().st_size / 2**20 for n, m in built.items()}

    # The providers a runner would use here (INFERQ_PROVIDERS from --env, else its default
    # TensorRT, CUDA, CPU), keeping those that really load.
    providers = usable_providers(RunnerSettings.from_env(env).providers)

    def raw_ort(n: str) -> RawResult:
        r = measure(built[n], max(1.0, args.duration / 2), providers=providers)
        print(f"  raw ORT {n}: batch-1 p50 {r.p50_ms_batch1:.3f} ms, best "
              f"{r.best_samples_s:,.0f} samples/s at batch {r.best_batch} on {r.provider}",
              file=sys.stderr, flush=True)
        return r

    quiet = [k for k in targets if k in QUIET]
    raw: dict[str, RawResult] = {}
    if not args.no_raw and not quiet:  # else around each model's turns (below)
        raw = {n: raw_ort(n) for n in names}

    paths: list[HotPath] = []
    if not args.no_hotpath:
        for m in built.values():
            paths.append(hot_path(m, 0.5 if args.quick else 2.0))
            print(f"  hot path {m.name}: " + ", ".join(
                f"{k} {v:,.1f}" for k, v in paths[-1].us.items()) + " us",
                file=sys.stderr, flush=True)

    ran: dict[str, str] = {}
    rtts: list[RoundTrip] = []
    if "kafka" in targets:
        # On a broker of its own, with new topics (FreshKafka says why).
        broker, bootstrap = tansu(work)
        try:
            for w in [int(x) for x in args.rtt_waits.split(",") if x]:
                rtts.append(asyncio.run(round_trip(bootstrap, w, max(2.0, args.duration / 2),
                                                   broker.cpu_s)))
                t = rtts[-1]
                print(f"  broker round trip (wait {w} ms): p50 {t.p50_ms:.2f} ms, p99 "
                      f"{t.p99_ms:.2f} ms, broker CPU {t.broker_cpu_ms_per_trip:.3f} ms/trip",
                      file=sys.stderr, flush=True)
        finally:
            broker.stop()
    by_kind: dict[str, list[Row]] = {}
    if quiet:  # up together, taking turns (QUIET)
        standing: list[Standing] = []
        try:
            for kind in quiet:
                target, metrics = start_target(kind, built, work, args, env)
                standing.append(Standing(target, metrics, args))
                if "engines" in target.extra:
                    ran[target.name] = target.extra["engines"]
                    print(f"{target.name}: runners {ran[target.name]}", file=sys.stderr)
            for n in names:
                # Raw ORT just before and just after the model's turns (rawort.bracket).
                before = None if args.no_raw else raw_ort(n)
                got = run_group(standing, [n], clients, args.repeat)
                if before is not None:
                    raw[n] = bracket(before, raw_ort(n))
                for kind, slot in zip(quiet, standing, strict=True):
                    by_kind.setdefault(kind, []).extend(got[slot.name])
        finally:
            for slot in reversed(standing):
                slot.target.stop()
    for kind in targets:
        if kind in QUIET:
            continue
        if kind != "kafka":
            raise SystemExit(f"unknown target {kind!r}")
        fresh = FreshKafka(built, work, args, env)
        by_kind[kind] = run_group([fresh], names, clients, args.repeat)[fresh.name]
        ran[fresh.name] = fresh.engines
    rows = [row for kind in targets for row in by_kind.get(kind, [])]
    print(table(rows, raw, rtts, model_mib) + hot_table(paths) + runners_table(ran))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(as_json(rows, raw, rtts), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
