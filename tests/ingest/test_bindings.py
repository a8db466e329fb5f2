from __future__ import annotations

import re

import msgspec
import numpy as np
import pytest

from ingest.bindings import _json_array, cast_value
from ingest.errors import BadRequest
from ingest.json_numbers import number_array
from schemas.registry import TensorSpec
from schemas.submit_api import Binding


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


def test_integers_at_the_edges_of_64_bits() -> None:
    # JSON integers arrive as int64 (uint64 above its range), which int64 and uint64
    # targets take without a range check; the edges must still hold.
    edges = [-(2**63), 2**63 - 1]
    assert cast_value(spec("int64"), edges).tolist() == edges
    assert cast_value(spec("uint64"), [0, 2**64 - 1]).tolist() == [0, 2**64 - 1]
    assert cast_value(spec("int64"), [[1, 2], [3, 4]]).dtype == np.int64
    # A list mixing values only int64 holds with values only uint64 holds is read by
    # numpy as float64; none may be rounded (2**64 - 1 once became 0).
    big = [1, 2**63 + 1, 2**64 - 1]
    assert cast_value(spec("uint64"), big).tolist() == big
    assert cast_value(spec("uint64"), [[0], [2**64 - 1]]).tolist() == [[0], [2**64 - 1]]


@pytest.mark.parametrize(
    ("dtype", "value", "message"),
    [
        ("int32", [1.5], "expects integers"),
        ("int32", [2**40], "do not fit int32"),
        ("uint8", [-1], "do not fit uint8"),
        ("uint8", [256], "do not fit uint8"),
        ("int64", [2**63], "do not fit int64"),
        ("int64", [2**70], "do not fit int64"),
        ("uint64", [-1], "do not fit uint64"),
        ("int32", [2**31], "do not fit int32"),
        ("int64", [-1, 2**63], "do not fit int64"),
        ("uint64", [-1, 2**64 - 1], "do not fit uint64"),
        ("uint64", [1.0, 1e30], "do not fit uint64"),
        ("uint64", [0.5, 2**64 - 1], "expects integers"),
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


def _from_json(spec: TensorSpec, payload: str) -> np.ndarray:
    binding = Binding(tensorName=spec.name, payloadType="Json", payload=payload)
    return _json_array(binding, spec)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int8", "int32", "int64",
                                   "uint8", "uint64"])
@pytest.mark.parametrize(
    ("shape", "payload"),
    [
        ((-1, 4), "[[1, 2, -3, 0], [4, 5, 6, 7]]"),  # integers: every dtype's fast path
        ((-1, 4), "[[1, 2.5, -3e-7, 0.1], [4, 5, 6, 7]]"),  # floats: float dtypes' fast path
        ((-1, 2), "[[1.0, 2.0], [300, 0]]"),  # integral floats; 300 past int8, uint8
        ((-1,), "[0.1, 1e300, -2]"),  # out of float16/float32's range: refused
        ((-1,), "[-1, 128, 65536, 4294967296]"),  # each past some integer dtype
        ((-1,), "[18446744073709551615, 9223372036854775808]"),  # past int64, not uint64
        ((-1,), "[18446744073709551616]"),  # past every dtype's integers
        ((-1, 2), "[[1, true], [null, 0]]"),  # booleans and null: the general path
        ((-1, 2), "[[1, 2], [3]]"),  # ragged
        ((-1, 2, 2), "[[1, 2], [3, 4]]"),  # one level short of the model's rank
        ((-1,), '[1, "2"]'),  # a string
        ((-1,), "[1e999, 1]"),  # past float64: not valid JSON, as before
        ((), "2"),  # a scalar
    ],
)
def test_numeric_tensors_from_json_match_the_general_path(
    dtype: str, shape: tuple[int, ...], payload: str
) -> None:
    """Numeric tensors take a fast path (``ingest/json_numbers.py``); whatever it takes
    or leaves to ``cast_value``, the result is the general path's, value for value, or its
    error."""
    s = TensorSpec(name="t", dtype=dtype, shape=shape)
    try:
        expected = cast_value(s, msgspec.json.decode(payload))
    except (BadRequest, msgspec.DecodeError) as exc:
        with pytest.raises(BadRequest, match=re.escape(str(exc))):
            _from_json(s, payload)
        return
    got = _from_json(s, payload)
    assert got.dtype == expected.dtype == np.dtype(dtype)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_the_fast_path_takes_plain_numbers_and_leaves_the_rest() -> None:
    fast = number_array("[[1, 2, 3.5]]", 2, "float32")
    assert fast is not None and fast.dtype == np.float32 and fast.tolist() == [[1, 2, 3.5]]
    for payload in ("[[1, 2, true]]", "[[1, 2, 3]", "[1, 2, 3]", "[[1, 2, 1e39]]",
                    "[[1], [2, 3]]"):
        assert number_array(payload, 2, "float32") is None, payload
    ids = number_array("[[101, 2054, 102]]", 2, "int64")
    assert ids is not None and ids.dtype == np.int64 and ids.tolist() == [[101, 2054, 102]]
    for payload in ("[[1, 2.0]]", "[[1, true]]", "[[9223372036854775808]]"):
        assert number_array(payload, 2, "int64") is None, payload
