"""The runner's queue time: to the microsecond from a current ingest's stamp, to the
millisecond from an older ingest's (rolling upgrades), zero without a stamp."""

from __future__ import annotations

import msgspec
import pytest

from runner.service import _queued_ms
from schemas.messages import InferenceRequest, ModelRef, request_decoder

MODEL = ModelRef(name="m", version="1", uri="file:///m.onnx", sha256="0" * 64)


def request(**stamps: int) -> InferenceRequest:
    return InferenceRequest(subtask_id="s", task_id="t", account_id="a", model=MODEL, **stamps)


def test_microsecond_stamp_resolves_below_a_millisecond() -> None:
    now_us = 1_700_000_000_123_456
    req = request(created_at_ms=(now_us - 250) // 1000, created_at_us=now_us - 250)
    assert _queued_ms(req, now_us) == pytest.approx(0.25)


def test_an_older_ingest_without_microseconds_gets_milliseconds() -> None:
    # The request as an ingest that predates the field puts it on the bus, read with the
    # runner's own decoder.
    old = msgspec.msgpack.encode({"subtask_id": "s", "task_id": "t", "account_id": "a",
                                  "model": msgspec.to_builtins(MODEL),
                                  "created_at_ms": 1_700_000_000_100})
    req = request_decoder.decode(old)
    assert req.created_at_us == 0
    assert _queued_ms(req, 1_700_000_000_103_900) == 3.0


def test_no_stamp_and_clock_skew_give_zero() -> None:
    assert _queued_ms(request(), 1_700_000_000_000_000) == 0.0
    # A runner whose clock is behind the ingest's never reports a negative queue time.
    assert _queued_ms(request(created_at_us=1_700_000_000_000_500), 1_700_000_000_000_000) == 0.0
