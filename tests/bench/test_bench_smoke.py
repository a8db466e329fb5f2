"""The bench's own parts work: models build, the load generator drives a real `inferq up`
over HTTP, and the table reports what it measured (seconds, not a benchmark)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import bench.__main__ as bench_main
from bench.hotpath import STAGES
from bench.load import LoadResult
from bench.rawort import RawResult, bracket
from bench.report import Row, breakdown, table

ROOT = Path(__file__).resolve().parents[2]


def test_table_ratios_and_breakdown() -> None:
    load = LoadResult(clients=8, seconds=2.0, ok=200, latencies_ms=[1.0, 2.0, 3.0, 4.0])
    stages = breakdown({"inferq_runner_inference_seconds_count": 10,
                        "inferq_runner_inference_seconds_sum": 0.01},
                       {"inferq_runner_inference_seconds_count": 20,
                        "inferq_runner_inference_seconds_sum": 0.03,
                        "inferq_runner_batch_size_count": 5, "inferq_runner_batch_size_sum": 20})
    assert stages.keys() == {"inference", "batch"}
    assert abs(stages["inference"] - 2.0) < 1e-9 and stages["batch"] == 4.0
    out = table([Row("inferq embedded", "tiny", load, 120.0, stages, rss_now_mib=95.0),
                 Row("MLServer 1.7 no batching", "tiny", LoadResult(8, 2.0, ok=100,
                                                                    latencies_ms=[5.0]), 90.0)],
                {"tiny": RawResult(0.01, 1000.0, 32)}, [], {"tiny": 0.001})
    assert "| inferq embedded | tiny | 8 | 100 | 2.50 |" in out
    assert "| 0.1000 |" in out  # 100 req/s against 1000 samples/s raw
    assert "| 0 | 120 / 95 | 0.1000 |" in out and "| 90 / — |" in out  # peak / after RSS
    assert "| inferq embedded | tiny | 8 | 2.00 | 0.50 |" in out  # ours / peer
    assert "| tiny | 0.010 | 1,000 (32) | 0.0 | CPUExecutionProvider |" in out


def test_raw_ort_bracketing_the_turns_is_their_mean() -> None:
    r = bracket(RawResult(0.01, 1000.0, 32), RawResult(0.03, 3000.0, 64))
    assert (r.best_samples_s, r.best_batch, r.spread) == (2000.0, 64, (1000.0, 3000.0))
    assert abs(r.p50_ms_batch1 - 0.02) < 1e-12
    load = LoadResult(clients=8, seconds=2.0, ok=200, latencies_ms=[1.0])
    out = table([Row("inferq embedded", "tiny", load, 1.0)], {"tiny": r}, [], {"tiny": 0.0})
    assert "| tiny | 0.020 | 2,000 (64) — 1,000 before, 3,000 after |" in out
    assert "| 0.0500 |" in out  # 100 req/s against the mean, 2,000


@pytest.mark.parametrize("dialect", ["submit", "v2-binary"])
def test_quick_run_against_inferq_up(dialect: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--models", "tiny", "--clients", "2",
         "--targets", "embedded", "--repeat", "3", "--dialect", dialect,
         *(["--no-raw"] if dialect != "submit" else [])],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    if dialect == "submit":
        # Raw ORT just before and just after the model's turns, both shown, their mean used.
        raw = re.search(r"^\| tiny \| [\d.]+ \| ([\d,]+) \(\d+\) — ([\d,]+) before, ([\d,]+) "
                        r"after \|", proc.stdout, re.M)
        assert raw, proc.stdout
        mean, before, after = (int(g.replace(",", "")) for g in raw.groups())
        assert before > 0 and after > 0 and abs(mean - (before + after) / 2) <= 1
        assert proc.stderr.count("raw ORT tiny:") == 2
    row = re.search(r"^\| inferq embedded \| tiny \| 2 \| ([\d,]+) \| [\d.]+ \| [\d.]+ \| (\d+) \| "
                    r"(\d+) / (\d+) \|", proc.stdout, re.M)
    assert row, proc.stdout
    assert int(row.group(1).replace(",", "")) > 0 and row.group(2) == "0"
    assert 0 < int(row.group(4)) <= int(row.group(3))  # resident now, at most the peak
    # CPU per request over the window: the server's event loop and the load generator
    # did work; there is no broker on the embedded bus.
    cpu = re.search(r"^\| inferq embedded \| tiny \| 2 \|.* \| ([\d,]+) / ([\d,]+) / — / "
                    r"([\d,]+) \|$", proc.stdout, re.M)
    assert cpu, proc.stdout
    assert int(cpu.group(1).replace(",", "")) > 0 and int(cpu.group(3).replace(",", "")) > 0
    # What ran, as the engines API says: here the CPU provider (CUDA on a GPU machine).
    ran = re.search(r"^\| inferq embedded \| (cpu|cuda) \(([^)]*)\) \|$", proc.stdout, re.M)
    assert ran and "CPUExecutionProvider" in ran.group(2), proc.stdout
    # The hot path, stage by stage, timed on inferq's own code.
    stages = dict(re.findall(r"^\| (\w+) \| [^|]+ \| ([\d,.]+) \|$", proc.stdout, re.M))
    assert set(STAGES) <= stages.keys(), proc.stdout
    assert all(float(stages[s].replace(",", "")) > 0 for s in STAGES)
    # Three runs of the cell, one table row: the run with the median req/s.
    runs = [int(m.replace(",", "")) for m in re.findall(
        r"inferq embedded\s+tiny\s+c=2\s+([\d,]+) req/s", proc.stderr)]
    assert len(runs) == 3, proc.stderr
    assert sorted(runs)[1] == int(row.group(1).replace(",", "")), (runs, row.group(0))


def test_targets_take_turns_run_by_run() -> None:
    """Each cell is run on every slot in turn, repeat by repeat, forwards then backwards
    (a drifting host drifts for all alike), and each slot's row is its own median run."""
    calls: list[tuple[str, str, int]] = []

    class Fake:
        def __init__(self, name: str, rps: list[int]) -> None:
            self.name = name
            self._rps = iter(rps)

        def run(self, model: str, clients: int) -> Row:
            calls.append((self.name, model, clients))
            ok = next(self._rps)
            return Row(self.name, model, LoadResult(clients, 1.0, ok=ok,
                                                    latencies_ms=[float(ok)]), 1.0)

    slots = [Fake("a", [30, 10, 20, 30, 10, 20]), Fake("b", [5, 7, 6, 9, 8, 7])]
    rows = bench_main.run_group(slots, ["tiny"], [1, 8], repeat=3)
    rounds = [("a", "b"), ("b", "a"), ("a", "b")]
    assert calls == [(t, "tiny", c) for c in (1, 8) for r in rounds for t in r]
    assert [r.load.ok for r in rows["a"]] == [20, 20]  # medians of 30, 10, 20 each time
    assert [r.load.ok for r in rows["b"]] == [6, 8]
    assert [r.load.clients for r in rows["b"]] == [1, 8]


def test_kafka_runs_each_on_a_broker_of_its_own() -> None:
    """tansu slows as its partitions fill, so every Kafka run starts on new topics: its
    own broker, ingest and runner, and the round trip on one more."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--models", "tiny", "--clients", "1",
         "--targets", "kafka", "--no-raw", "--no-hotpath", "--repeat", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.count("inferq kafka: up in") == 2, proc.stderr
    row = re.search(r"^\| inferq kafka \| tiny \| 1 \| ([\d,]+) \|.* \| ([\d,]+) / ([\d,]+) / "
                    r"([\d,]+) / ([\d,]+) \|$", proc.stdout, re.M)
    assert row, proc.stdout
    assert int(row.group(1).replace(",", "")) > 0
    assert int(row.group(4).replace(",", "")) > 0  # the run's own broker did the work
    assert re.search(r"^\| 5 \| [\d.]+ \| [\d.]+ \| \d+ \|", proc.stdout, re.M), proc.stdout
    assert re.search(r"^\| inferq kafka \| cpu \(CPUExecutionProvider\) \|$", proc.stdout,
                     re.M), proc.stdout


def test_first_request_with_and_without_preload() -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.first_request", "tiny", "--rounds", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = re.findall(r"^tiny (without preload|preloaded)\s+ready\s+([\d.]+) s\s+first request"
                       r"\s+([\d.]+) ms\s+second\s+([\d.]+) ms$", proc.stdout, re.M)
    assert [kind for kind, *_ in lines] == ["without preload", "preloaded"], proc.stdout
    assert all(float(v) > 0 for _, *values in lines for v in values)
