"""The results table, the ratios, and where the time goes."""

from __future__ import annotations

import re
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from bench.broker import RoundTrip
from bench.cpu import PARTS
from bench.load import LoadResult
from bench.rawort import RawResult


def scrape(url: str | None) -> dict[str, float]:
    """Sums and counts of the runner's histograms (empty when there is no endpoint)."""
    if not url:
        return {}
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"^(inferq_runner_\w+_(?:sum|count))\s+([0-9.eE+-]+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def breakdown(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Mean ms per request of the runner's stages over one load run, and mean batch."""
    out: dict[str, float] = {}
    for stage, metric in (("queue", "queue_seconds"), ("batch_wait", "batch_wait_seconds"),
                          ("inference", "inference_seconds")):
        n = after.get(f"inferq_runner_{metric}_count", 0) - before.get(
            f"inferq_runner_{metric}_count", 0)
        s = after.get(f"inferq_runner_{metric}_sum", 0) - before.get(
            f"inferq_runner_{metric}_sum", 0)
        if n > 0:
            out[stage] = s / n * 1000
    n = after.get("inferq_runner_batch_size_count", 0) - before.get(
        "inferq_runner_batch_size_count", 0)
    s = after.get("inferq_runner_batch_size_sum", 0) - before.get(
        "inferq_runner_batch_size_sum", 0)
    if n > 0:
        out["batch"] = s / n
    return out


@dataclass
class Row:
    target: str
    model: str
    load: LoadResult
    rss_mib: float
    stages: dict[str, float] = field(default_factory=dict)
    #: Resident memory right after the row's runs (``rss_mib`` is the peak).
    rss_now_mib: float = float("nan")
    #: CPU microseconds per request over the measure window (``bench.cpu.PARTS``).
    cpu_us: dict[str, float] = field(default_factory=dict)


def _f(v: float, nd: int = 1) -> str:
    return "—" if v != v else f"{v:,.{nd}f}"  # NaN -> dash


def table(rows: list[Row], raw: dict[str, RawResult], rtts: list[RoundTrip],
          model_mib: dict[str, float]) -> str:
    lines = ["## Raw ONNX Runtime (same machine, same run)", "",
             "| model | batch-1 p50 ms | best samples/s (batch) | model MiB | provider |",
             "|---|---:|---:|---:|---|"]
    for name, r in raw.items():
        spread = (f" — {r.spread[0]:,.0f} before, {r.spread[1]:,.0f} after"
                  if r.spread else "")
        lines.append(f"| {name} | {r.p50_ms_batch1:.3f} | {r.best_samples_s:,.0f} "
                     f"({r.best_batch}){spread} | {model_mib.get(name, 0):.1f} | {r.provider} |")
    if rtts:
        lines += ["", "## Broker round trip (produce→consume→produce→consume, 1 KiB)", "",
                  "| fetch_max_wait_ms | p50 ms | p99 ms | trips | broker CPU ms/trip |",
                  "|---:|---:|---:|---:|---:|"]
        for t in rtts:
            lines.append(f"| {t.fetch_max_wait_ms} | {t.p50_ms:.2f} | {t.p99_ms:.2f} | "
                         f"{t.count} | {t.broker_cpu_ms_per_trip:.3f} |")
    lines += ["", "## Servers (closed loop over HTTP keep-alive, one sample per request)", "",
              "| server | model | clients | req/s | p50 ms | p99 ms | errors | "
              "RSS MiB peak / after | req/s ÷ ORT best | p50 ÷ ORT b1 | "
              "runner: queue / batch wait / infer ms, "
              "mean batch | CPU µs/req: server loop / other threads / broker / load gen |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        rw = raw.get(r.model)
        thr = r.load.rps / rw.best_samples_s if rw else float("nan")
        lat = r.load.pct(50) / rw.p50_ms_batch1 if rw else float("nan")
        st = r.stages
        stages = (f"{_f(st.get('queue', float('nan')), 2)} / "
                  f"{_f(st.get('batch_wait', float('nan')), 2)} / "
                  f"{_f(st.get('inference', float('nan')), 2)}, "
                  f"{_f(st.get('batch', float('nan')), 1)}") if st else ""
        lines.append(f"| {r.target} | {r.model} | {r.load.clients} | {r.load.rps:,.0f} | "
                     f"{_f(r.load.pct(50), 2)} | {_f(r.load.pct(99), 2)} | {r.load.errors} | "
                     f"{_f(r.rss_mib, 0)} / {_f(r.rss_now_mib, 0)} | {thr:.4f} | "
                     f"{_f(lat, 0)}× | {stages} | {_cpu(r.cpu_us)} |")
    peers = [r for r in rows if r.target.startswith("MLServer")]
    ours = [r for r in rows if r.target.startswith("inferq")]
    if peers and ours:
        lines += ["", "## inferq ÷ MLServer's best setting (same run)", "",
                  "| server | model | clients | req/s ratio (≥ 2 wanted at 64) | "
                  "p50 ratio (≤ 0.8 wanted at 1) |", "|---|---|---:|---:|---:|"]
        for r in ours:
            same = [p for p in peers if p.model == r.model and p.load.clients == r.load.clients]
            if not same:
                continue
            best_rps = max(p.load.rps for p in same)
            best_p50 = min(p.load.pct(50) for p in same)
            lines.append(f"| {r.target} | {r.model} | {r.load.clients} | "
                         f"{r.load.rps / best_rps if best_rps else float('nan'):.2f} | "
                         f"{r.load.pct(50) / best_p50 if best_p50 else float('nan'):.2f} |")
    return "\n".join(lines)


def runners_table(ran: dict[str, str]) -> str:
    """Where inferq's runs ran: each target's runners, device and execution providers."""
    if not ran:
        return ""
    lines = ["\n", "## inferq's runners (engines API: device and providers that loaded)", "",
             "| server | runners |", "|---|---|"]
    lines += [f"| {name} | {what} |" for name, what in ran.items()]
    return "\n".join(lines)


def _cpu(us: dict[str, float]) -> str:
    if not us:
        return ""
    return " / ".join(_f(us.get(k, float("nan")), 0) for k in PARTS)


def as_json(rows: list[Row], raw: dict[str, RawResult], rtts: list[RoundTrip]) -> Any:
    return {
        "raw_ort": {k: vars(v) for k, v in raw.items()},
        "broker_round_trip": [vars(t) for t in rtts],
        "servers": [{"target": r.target, "model": r.model, "clients": r.load.clients,
                     "rps": r.load.rps, "p50_ms": r.load.pct(50), "p99_ms": r.load.pct(99),
                     "errors": r.load.errors, "first_error": r.load.first_error,
                     "peak_rss_mib": r.rss_mib, "rss_after_mib": r.rss_now_mib,
                     "runner_stages_ms": r.stages, "cpu_us_per_request": r.cpu_us}
                    for r in rows],
    }
