from __future__ import annotations

import numpy as np
import pytest

from ingest.bindings import cast_value
from ingest.errors import BadRequest
from schemas.registry import TensorSpec


def spec(dtype: str) -> TensorSpec:
    return TensorSpec(name="t", dtype=dtype, shape=(-1,))


def test_casts_follow_the_model_dtype() -> None:
    assert cast_value(spec("float32"), [1, 2.5]).dtype == np.float32
    assert cast_value(spec("int64"), [1.0, 2.0]).tolist() == [1, 2]
    assert cast_value(spec("bool"), [0, 1, True]).tolist() == [False, True, True]
    assert cast_value(spec("float32"), [2**70]).dtype == np.float32
    assert np.isinf(cast_value(spec("float16"), [float("inf")])[0])
    assert cast_value(spec("string"), ["a"]).tolist() == ["a"]
    assert cast_value(spec("uint8"), [0, 255]).dtype == np.uint8


@pytest.mark.parametrize(
    ("dtype", "value", "message"),
    [
        ("int32", [1.5], "expects integers"),
        ("int32", [2**40], "do not fit int32"),
        ("uint8", [-1], "do not fit uint8"),
        ("uint8", [256], "do not fit uint8"),
        ("int64", [float("nan")], "expects integers"),
        ("bool", [2], "expects booleans"),
        ("float16", [70000.0], "do not fit float16"),
        ("float32", ["x"], "expects float32 numbers"),
        ("string", [1], "expects strings"),
        ("float32", [[1], [1, 2]], "ragged"),
    ],
)
def test_lossy_or_malformed_values_are_refused(dtype: str, value: object, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        cast_value(spec(dtype), value)
