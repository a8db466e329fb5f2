"""Fetched .npy inputs cast to the model's dtype only where no value is lost."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from runner.errors import InputError
from runner.execute import build_feeds
from runner.models import LoadedModel, _specs
from schemas.messages import ModelRef
from tests.onnx_models import add_model, int_model


def loaded(data: bytes) -> LoadedModel:
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return LoadedModel(
        ref=ModelRef(name="m", version="1", uri="file:///m.onnx",
                     sha256=hashlib.sha256(data).hexdigest()),
        session=session, inputs={s.name: s for s in _specs(session.get_inputs())},
        outputs=tuple(o.name for o in session.get_outputs()),
        providers=("CPUExecutionProvider",))


def test_narrowing_casts_that_keep_every_value_are_made() -> None:
    floats = loaded(add_model())
    x = np.array([[0.5, -1e30, np.inf, np.nan]])  # float64; inf and nan stay as they are
    got = build_feeds(floats, (), {"x": x})["x"]
    assert got.dtype == np.float32
    assert got[0, :3].tolist() == [0.5, np.float32(-1e30), np.inf] and np.isnan(got[0, 3])
    ints = loaded(int_model())
    feeds = build_feeds(ints, (), {"a": np.array([[1, 2, 3]], np.uint64),
                                   "b": np.array([[-5, 0, 2**31 - 1]], np.int32)})
    assert feeds["a"].dtype == np.int64 and feeds["a"].tolist() == [[1, 2, 3]]
    assert feeds["b"].dtype == np.int64 and feeds["b"].tolist() == [[-5, 0, 2**31 - 1]]

@pytest.mark.parametrize(
    ("model", "name", "array", "message"),
    [
        (add_model(), "x", np.array([[1.0, 1e300, 0.0, 0.0]]),
         r"beyond ±3\.40282e\+38 do not fit float32"),
        (int_model(), "a", np.array([[1, 2**63, 3]], np.uint64),
         r"values 1\.\.9223372036854775808 do not fit int64"),
    ],
)
def test_casts_that_would_wrap_or_overflow_are_refused(model: bytes, name: str,
                                                       array: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        build_feeds(loaded(model), (), {name: array})
