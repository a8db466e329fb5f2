"""Registry records: batching settings, their precedence, and records written before them."""

from __future__ import annotations

import msgspec
import pytest

from schemas.registry import (
    ModelRecord,
    TaskRecord,
    TensorSpec,
    batch_size_problem,
    batching_limits,
    decode_record,
    encode_record,
    queue_delay_problem,
)


def model(size: int | None = None, delay: float | None = None) -> ModelRecord:
    spec = TensorSpec(name="x", dtype="float32", shape=(-1, 4))
    return ModelRecord(name="m", version="1", sha256="ab" * 32, uri="file:///m", size=1,
                       inputs=(spec,), outputs=(spec,), created_at_ms=1,
                       max_batch_size=size, max_queue_delay_ms=delay)


def task(size: int | None = None, delay: float | None = None) -> TaskRecord:
    return TaskRecord(id="t", account_id="a", name="t", model_id="m:1",
                      max_batch_size=size, max_queue_delay_ms=delay)


def test_records_written_before_batching_settings_decode_with_none() -> None:
    for record in (model(), task()):
        old = msgspec.to_builtins(record)
        del old["max_batch_size"], old["max_queue_delay_ms"]
        tag = "model" if isinstance(record, ModelRecord) else "task"
        decoded = decode_record(msgspec.msgpack.encode({"type": tag, **old}))
        assert decoded == record
        assert isinstance(decoded, ModelRecord | TaskRecord)
        assert decoded.max_batch_size is None and decoded.max_queue_delay_ms is None


def test_settings_survive_the_topic() -> None:
    assert decode_record(encode_record(model(8, 2.5))) == model(8, 2.5)
    assert decode_record(encode_record(task(1, 0.0))) == task(1, 0.0)


@pytest.mark.parametrize(("t", "m", "want"), [
    (task(), model(), (0, -1.0)),  # nothing set: the runner's defaults
    (task(), model(8, 5.0), (8, 5.0)),  # the model's
    (task(2, 0.0), model(8, 5.0), (2, 0.0)),  # the task's beat the model's, 0 ms included
    (task(2), model(8, 5.0), (2, 5.0)),  # per field: the delay falls back to the model's
    (task(None, 7.0), model(8), (8, 7.0)),
    (task(1), model(), (1, -1.0)),  # ... and to the runner's
])
def test_task_over_model_over_runner_per_field(t: TaskRecord, m: ModelRecord,
                                               want: tuple[int, float]) -> None:
    assert batching_limits(t, m) == want


def test_problems_name_the_field_and_the_range() -> None:
    for ok in (None, 1, 1024):
        assert batch_size_problem("maxBatchSize", ok) is None
    for ok_ms in (None, 0.0, 0.5, 10_000.0):
        assert queue_delay_problem("maxQueueDelayMs", ok_ms) is None
    for bad in (0, -3, 1025, 10**30):
        msg = batch_size_problem("maxBatchSize", bad)
        assert msg is not None and msg.startswith("maxBatchSize ") and "1 to 1024" in msg
        assert repr(bad) in msg
    for bad_ms in (-0.001, 10_000.5, float("nan"), float("inf")):
        msg = queue_delay_problem("maxQueueDelayMs", bad_ms)
        assert msg is not None and msg.startswith("maxQueueDelayMs ")
        assert "0 to 10000 milliseconds" in msg
