from __future__ import annotations

import numpy as np
import pytest

from schemas.tensors import NUMERIC_DTYPES, Tensor, TensorError, decode_tensor, encode_array


@pytest.mark.parametrize("dtype", sorted(NUMERIC_DTYPES))
def test_numeric_round_trip_is_exact(dtype: str) -> None:
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((2, 3, 4)) * 10).astype(dtype)
    tensor = encode_array("x", array)
    assert tensor.dtype == dtype and tensor.shape == (2, 3, 4)
    back = decode_tensor(tensor)
    assert back.dtype == np.dtype(dtype) and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_big_endian_input_is_stored_little_endian() -> None:
    array = np.arange(4, dtype=">i4")
    tensor = encode_array("x", array)
    assert tensor.data == np.arange(4, dtype="<i4").tobytes()


def test_strings_round_trip() -> None:
    array = np.array([["a", "bé"], ["", "ñ"]], dtype=object)
    tensor = encode_array("s", array)
    assert tensor.dtype == "string" and tensor.strings == ("a", "bé", "", "ñ")
    np.testing.assert_array_equal(decode_tensor(tensor), array)


def test_non_contiguous_arrays_encode_in_row_major_order() -> None:
    array = np.arange(6, dtype=np.float32).reshape(2, 3).T
    np.testing.assert_array_equal(decode_tensor(encode_array("x", array)), array)


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (Tensor(name="x", dtype="float32", shape=(2,), data=b"\0" * 4), "4 bytes do not fit"),
        (Tensor(name="x", dtype="complex64", shape=(1,), data=b"\0" * 8), "unknown dtype"),
        (Tensor(name="x", dtype="string", shape=(2,), strings=("a",)), "1 strings for shape"),
        (Tensor(name="x", dtype="int8", shape=(-1,), data=b""), "negative dimension"),
    ],
)
def test_inconsistent_tensors_are_refused(tensor: Tensor, message: str) -> None:
    with pytest.raises(TensorError, match=message):
        decode_tensor(tensor)


def test_unsupported_dtype_is_refused() -> None:
    with pytest.raises(TensorError, match="complex128 is not supported"):
        encode_array("x", np.zeros(2, np.complex128))
