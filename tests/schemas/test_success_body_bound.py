"""The notifier charges a final event's body before writing it: the bound must never be
under the real JSON length, whatever the dtype, values or shape."""

from __future__ import annotations

import numpy as np
import pytest

from schemas.messages import Succeeded
from schemas.submit_api import json_encoder, submit_response, success_body_bound
from schemas.tensors import NUMERIC_DTYPES, encode_array


def extremes(dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    dt = np.dtype(dtype)
    n = int(np.prod(shape))
    if dt.kind == "b":
        values = np.zeros(n, dtype=bool)  # "false" is the longer
    elif dt.kind == "f":
        pool = np.array([-np.finfo(dt).tiny, -np.finfo(dt).max, np.nan, -np.inf,
                         np.finfo(dt).eps, -1 / 3], dtype=dt)
        values = pool[np.arange(n) % len(pool)]
    else:
        values = np.full(n, np.iinfo(dt).min if dt.kind == "i" else np.iinfo(dt).max, dtype=dt)
    return values.reshape(shape)


@pytest.mark.parametrize("dtype", sorted(NUMERIC_DTYPES))
@pytest.mark.parametrize("shape", [(), (1,), (1, 7), (3, 0), (2, 3, 4), (5, 1, 0, 2)])
def test_the_bound_is_never_under_the_body(dtype: str, shape: tuple[int, ...]) -> None:
    outputs = (encode_array("y", extremes(dtype, shape)),
               encode_array("logits \"x\"", np.ones((2, 2), dtype=dtype)))
    result = Succeeded(subtask_id="s-\u00e9", task_id="t", account_id="a", outputs=outputs)
    body = json_encoder.encode(submit_response(result.subtask_id, result))
    bound = success_body_bound(result.subtask_id, result)
    assert bound is not None and bound >= len(body)
    # and not wildly over for floats, the usual outputs (a float32 is 19-24 characters)
    if dtype == "float32" and shape == (2, 3, 4):
        assert bound < 3 * len(body)


def test_string_outputs_have_no_bound() -> None:
    result = Succeeded(subtask_id="s", task_id="t", account_id="a",
                       outputs=(encode_array("y", np.array([["\x00\x01"]], dtype=object)),))
    assert success_body_bound("s", result) is None
