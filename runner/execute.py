"""Turning one request into ONNX Runtime feeds, running it, and encoding the outputs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from concurrent.futures import Executor
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


async def run_model(
    model: LoadedModel,
    feeds: dict[str, npt.NDArray[Any]],
    outputs: tuple[str, ...],
    executor: Executor,
) -> tuple[tuple[Tensor, ...], float]:
    """Run in the executor (never on the loop); returns outputs and inference ms."""
    names = list(outputs) or list(model.outputs)
    unknown = [n for n in names if n not in model.outputs]
    if unknown:
        raise InputError(f"unknown output(s) {unknown}: the model has {list(model.outputs)}")

    def call() -> tuple[list[Any], float]:
        t0 = time.perf_counter()
        try:
            values = model.session.run(names, feeds)
        except Exception as exc:  # ORT raises Fail, InvalidArgument, RuntimeException...
            raise ModelRunError(f"model error: {exc}") from exc
        return values, (time.perf_counter() - t0) * 1000

    values, ms = await asyncio.get_running_loop().run_in_executor(executor, call)
    return tuple(encode_array(n, np.asarray(v)) for n, v in zip(names, values, strict=True)), ms
