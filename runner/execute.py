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
from schemas.tensors import STRING, Tensor, TensorError, decode_tensor, encode_array


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
            _check_fits(name, array, np.dtype(spec.dtype))
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


def _check_fits(name: str, array: npt.NDArray[Any], target: np.dtype[Any]) -> None:
    """A narrowing cast (int64 to int8, float64 to float32...) must not wrap or
    overflow: values the target cannot hold are refused, as the JSON bindings do."""
    if not array.size or np.can_cast(array.dtype, target, "safe"):
        return
    if target.kind in "iu":
        info = np.iinfo(target)
        lo, hi = array.min(), array.max()
        if lo < info.min or hi > info.max:
            raise InputError(f"tensor {name!r}: the .npy's values {lo}..{hi} do not fit "
                             f"{target.name}")
    elif target.kind == "f":
        finite = array[np.isfinite(array)]  # ±inf and nan stay what they are
        if finite.size and float(np.abs(finite).max()) > float(np.finfo(target).max):
            raise InputError(f"tensor {name!r}: the .npy's values beyond "
                             f"±{np.finfo(target).max:g} do not fit {target.name}")


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
