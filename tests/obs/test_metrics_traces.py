"""/metrics after real traffic, and one trace id from HTTP to the runner's and notifier's logs."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ingest.results import ENTRY_OVERHEAD_BYTES
from notifier.book import SUBTASK_OVERHEAD
from obs.tracing import new_traceparent, parse_traceparent
from tests import onnx_models
from tests.harness import Stack, running_stack
from tests.metrics_text import samples, value

SUBMIT_ROUTE = "/api/inference/tasks/{task_id}"


@pytest.fixture
async def stack(kafka_bootstrap: str | None, tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(kafka_bootstrap, tmp_path) as s:
        yield s


def trace_records(caplog: pytest.LogCaptureFixture, logger: str, subtask_id: str
                  ) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger
            and getattr(r, "subtask_id", None) == subtask_id]


async def test_metrics_and_trace_ids(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="runner.service")
    caplog.set_level(logging.DEBUG, logger="notifier.service")
    task = await stack.create_task("acme", await stack.upload_model("add", onnx_models.add_model()))
    key = await stack.create_key("acme")
    traceparent = new_traceparent()
    trace_id = traceparent.split("-")[1]
    ids = []
    for i in range(4):
        headers = {"X-Api-Key": key} | ({"traceparent": traceparent} if i == 0 else {})
        r = await stack.client.post(
            f"{stack.base_url}/api/inference/tasks/{task}", headers=headers,
            json={"bindings": [{"tensorName": "x", "payloadType": "Json",
                                "payload": json.dumps([[float(i)] * 4])}]})
        assert r.status_code == 200 and r.json()["state"] == "success", r.text
        ids.append(r.json()["id"])
    bad = await stack.submit("no-such-task", key, [])
    assert bad.status_code == 404

    m = samples((await stack.client.get(f"{stack.base_url}/metrics")).text)
    assert value(m, "inferq_http_requests_total", route=SUBMIT_ROUTE, status="200") == 4
    assert value(m, "inferq_http_requests_total", route=SUBMIT_ROUTE, status="404") == 1
    assert value(m, "inferq_http_request_duration_seconds_count", route=SUBMIT_ROUTE) == 5
    # Latency histograms: every answered call observed once, each well under a minute.
    for name in ("inferq_ingest_end_to_end_seconds", "inferq_runner_inference_seconds",
                 "inferq_runner_queue_seconds"):
        count, total = value(m, f"{name}_count"), value(m, f"{name}_sum")
        assert count == 4, name
        assert 0 < total < 4 * 60, (name, total)
    e2e_total = value(m, "inferq_ingest_end_to_end_seconds_sum")
    assert value(m, "inferq_runner_inference_seconds_sum") < e2e_total
    assert value(m, "inferq_runner_results_total", state="succeeded") == 4
    assert value(m, "inferq_runner_batch_size_count") == 4
    assert value(m, "inferq_runner_batch_size_sum") >= 4
    # Nothing is held or waiting once every call has been answered.
    assert value(m, "inferq_runner_in_flight") == 0
    assert value(m, "inferq_runner_queue_depth") == 0
    assert value(m, "inferq_runner_consumer_lag") == 0
    assert value(m, "inferq_ingest_waiters") == 0
    # The result book holds the four results (the 404 made none), each charged its
    # output bytes plus the per-entry overhead.
    assert value(m, "inferq_ingest_results_held") == 4
    assert value(m, "inferq_ingest_results_bytes") == 4 * (ENTRY_OVERHEAD_BYTES + 4 * 4)

    # The runner logs the traced subtask with its trace id; the others carry their own.
    runner_lines = trace_records(caplog, "runner.service", ids[0])
    assert runner_lines and all(getattr(r, "trace_id", None) == trace_id
                                for r in runner_lines)
    other = trace_records(caplog, "runner.service", ids[1])
    assert other and getattr(other[0], "trace_id", None) not in (None, trace_id)
    # The notifier sees the result asynchronously: poll, bounded.
    deadline = time.monotonic() + 15
    while not any(getattr(r, "trace_id", None) == trace_id
                  for r in trace_records(caplog, "notifier.service", ids[0])):
        assert time.monotonic() < deadline, "the notifier never logged the traced subtask"
        await asyncio.sleep(0.05)
    # The notifier's metrics reach the /metrics of the same process: its book holds the
    # four subtasks once it has read all their results (poll, bounded).
    while True:
        m = samples((await stack.client.get(f"{stack.base_url}/metrics")).text)
        if value(m, "inferq_notifier_book_subtasks") == 4:
            break
        assert time.monotonic() < deadline, m
        await asyncio.sleep(0.05)
    assert value(m, "inferq_notifier_records_total", topic="results") >= 4
    # Each charged the overhead plus its three events' JSON, the final one with outputs.
    assert value(m, "inferq_notifier_book_bytes") > 4 * (SUBTASK_OVERHEAD + 100)


def test_traceparent_parsing() -> None:
    tp = new_traceparent()
    assert parse_traceparent(tp) == (tp.split("-")[1], tp.split("-")[2])
    assert parse_traceparent(tp.encode()) == parse_traceparent(tp)
    for bad in (None, "", "garbage", "00-" + "0" * 32 + "-" + "1" * 16 + "-01",
                "00-" + "a" * 31 + "-" + "1" * 16 + "-01"):
        assert parse_traceparent(bad) is None, bad
