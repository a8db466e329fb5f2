"""Turning one request into ONNX Runtime feeds, and its outputs back into wire tensors.

The run itself happens in the batcher (``runner/batcher.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from runner.errors import InputError, ModelRunError
from runner.models import LoadedModel
from schemas.signature import SignatureError, check_shape, describe
from schemas.tensors import STRING, Tensor, TensorError, decode_tensor, encode_array, out_of_range


def build_feeds(
    model: LoadedModel, tensors: tuple[Tensor, ...], fetched: Mapping[str, npt.NDArray[Any]]
) -> dict[str, npt.NDArray[Any]]:
    feeds: dict[str, npt.NDArray[Any]] = {}
    for t in tensors:
        try:
            feeds[t.name] = decode_tensor(t)
        except TensorError as exc:
            raise InputError(str(exc)) from None
    for name, array in fetched.items():
        spec = model.inputs.get(name)
        if spec is None:
            raise InputError(f"unknown input {name!r}")
        if spec.dtype != STRING and array.dtype.name != spec.dtype:
            if not np.can_cast(array.dtype, np.dtype(spec.dtype), "same_kind"):
                raise InputError(
                    f"tensor {name!r}: the .npy holds {array.dtype.name}; the model expects "
                    f"{describe(spec)}"
                )
            if why := out_of_range(array, np.dtype(spec.dtype)):
                raise InputError(f"tensor {name!r}: the .npy's {why}")
            array = array.astype(spec.dtype)
        feeds[name] = array
    for name, spec in model.inputs.items():
        if name not in feeds:
            raise InputError(f"missing input {name!r} ({describe(spec)})")
        try:
            check_shape(spec, feeds[name].shape)
        except SignatureError as exc:
            raise InputError(str(exc)) from None
    return feeds


def output_names(model: LoadedModel, outputs: tuple[str, ...]) -> list[str]:
    """The outputs to fetch, in order (all of the graph's when none are named)."""
    names = list(outputs) or list(model.outputs)
    unknown = [n for n in names if n not in model.outputs]
    if unknown:
        raise InputError(f"unknown output(s) {unknown}: the model has {list(model.outputs)}")
    return names


def encode_outputs(names: list[str], values: list[npt.NDArray[Any]]) -> tuple[Tensor, ...]:
    if len(names) != len(values):
        raise ModelRunError(f"the model returned {len(values)} outputs for {len(names)} asked")
    try:
        return tuple(encode_array(n, np.asarray(v)) for n, v in zip(names, values, strict=True))
    except TensorError as exc:
        raise ModelRunError(str(exc)) from None
