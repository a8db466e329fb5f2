"""Checking tensors against a model's signature (shared by ingest and runners)."""

from __future__ import annotations

from collections.abc import Sequence

from schemas.registry import TensorSpec


class SignatureError(ValueError):
    """A tensor does not fit the model's input; the message names it."""


def describe(spec: TensorSpec) -> str:
    dims = ", ".join("?" if d < 0 else str(d) for d in spec.shape)
    return f"{spec.dtype} [{dims}]"


def check_shape(spec: TensorSpec, shape: Sequence[int]) -> None:
    if len(shape) != len(spec.shape) or any(
        want >= 0 and want != got for want, got in zip(spec.shape, shape, strict=True)
    ):
        raise SignatureError(
            f"tensor {spec.name!r}: shape {list(shape)} does not match the model's "
            f"{describe(spec)}"
        )
