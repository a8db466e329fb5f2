"""The tensor codec: numpy arrays <-> a compact wire form.

Numeric tensors travel as raw little-endian bytes plus dtype and shape, so a runner
turns them back into arrays with one ``np.frombuffer`` and no copy. String tensors
travel as a list of UTF-8 strings.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np
import numpy.typing as npt

#: Wire dtype names, as numpy spells them, plus "string" for ONNX string tensors.
NUMERIC_DTYPES: frozenset[str] = frozenset(
    {
        "bool",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "int8",
        "int16",
        "int32",
        "int64",
        "float16",
        "float32",
        "float64",
    }
)
STRING = "string"

#: Little-endian numpy dtypes by wire name, and wire names by numpy dtype: ``dtype.name``
#: and ``newbyteorder`` are slow enough to show in a small request's profile.
_LE_DTYPES: dict[str, np.dtype[np.generic]] = {
    n: np.dtype(n).newbyteorder("<") for n in NUMERIC_DTYPES}
_NAMES: dict[np.dtype[np.generic], str] = {np.dtype(n): n for n in NUMERIC_DTYPES}
_NAMES.update({dt: n for n, dt in _LE_DTYPES.items()})

#: ONNX TensorProto element types, by number, to wire dtype names.
ONNX_ELEM_TO_DTYPE: dict[int, str] = {
    1: "float32",
    2: "uint8",
    3: "int8",
    4: "uint16",
    5: "int16",
    6: "int32",
    7: "int64",
    8: STRING,
    9: "bool",
    10: "float16",
    11: "float64",
    12: "uint32",
    13: "uint64",
}

#: onnxruntime's type strings ("tensor(float)") to wire dtype names.
ORT_TYPE_TO_DTYPE: dict[str, str] = {
    "tensor(float)": "float32",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(uint16)": "uint16",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(string)": STRING,
    "tensor(bool)": "bool",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
}


class TensorError(ValueError):
    """A tensor that cannot be encoded or decoded; the message says why."""


class Tensor(msgspec.Struct, frozen=True, kw_only=True, gc=False, array_like=True):
    """One named tensor on the wire."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    #: Raw little-endian element bytes (numeric dtypes).
    data: bytes = b""
    #: Elements in row-major order (``dtype == "string"``).
    strings: tuple[str, ...] | None = None


#: The largest magnitude each float dtype holds, and each integer dtype's range.
_FLOAT_MAX = {np.dtype(t): float(np.finfo(t).max) for t in (np.float16, np.float32, np.float64)}
_INT_RANGE = {np.dtype(n): (int(np.iinfo(n).min), int(np.iinfo(n).max))
              for n in NUMERIC_DTYPES if n[0] in "iu"}


def out_of_range(array: npt.NDArray[np.generic], target: np.dtype[np.generic]) -> str | None:
    """Why casting ``array`` to the numeric dtype ``target`` would wrap or overflow
    ("values -1..300 do not fit uint8", "values beyond ±65504 do not fit float16"), or
    None when every value fits; ±inf and nan go into a float dtype as they are. Safe
    casts (int64 to int64, int8 to float32...) are not looked at."""
    kind = array.dtype.kind
    if not array.size or kind not in "iuf" or np.can_cast(array.dtype, target, "safe"):
        return None
    if target.kind in "iu":
        lo, hi = array.min(), array.max()
        low, high = _INT_RANGE[target]
        if lo < low or hi > high:
            return f"values {lo}..{hi} do not fit {target.name}"
    elif target.kind == "f":
        limit = _FLOAT_MAX[target]
        # One reduction in the common case; ±inf and nan fail it and take the masked
        # look that ignores them.
        if not float(np.abs(array).max()) <= limit:
            finite = array[np.isfinite(array)] if kind == "f" else array
            if finite.size and float(np.abs(finite).max()) > limit:
                return f"values beyond ±{limit:g} do not fit {target.name}"
    return None


def encode_array(name: str, array: npt.NDArray[np.generic]) -> Tensor:
    """Encode ``array`` under ``name``; object/unicode arrays become string tensors."""
    if array.dtype.kind in ("U", "S", "O"):
        flat = array.reshape(-1)
        strings = tuple(
            v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in flat.tolist()
        )
        return Tensor(name=name, dtype=STRING, shape=tuple(array.shape), strings=strings)
    dtype = _NAMES.get(array.dtype) or array.dtype.name  # e.g. big-endian: the slow way
    if dtype not in NUMERIC_DTYPES:
        raise TensorError(f"tensor {name!r}: dtype {array.dtype.name} is not supported")
    le = array.astype(_LE_DTYPES[dtype], copy=False)
    return Tensor(
        name=name, dtype=dtype, shape=tuple(array.shape), data=np.ascontiguousarray(le).tobytes()
    )


def decode_tensor(tensor: Tensor) -> npt.NDArray[np.generic]:
    """Turn a wire tensor back into an array, checking that bytes and shape agree."""
    count = math.prod(tensor.shape)
    if any(d < 0 for d in tensor.shape):
        raise TensorError(f"tensor {tensor.name!r}: negative dimension in shape {tensor.shape}")
    if tensor.dtype == STRING:
        strings = tensor.strings or ()
        if len(strings) != count:
            raise TensorError(
                f"tensor {tensor.name!r}: {len(strings)} strings for shape {list(tensor.shape)}"
            )
        return np.array(strings, dtype=object).reshape(tensor.shape)
    dt = _LE_DTYPES.get(tensor.dtype)
    if dt is None:
        raise TensorError(f"tensor {tensor.name!r}: unknown dtype {tensor.dtype!r}")
    if len(tensor.data) != count * dt.itemsize:
        raise TensorError(
            f"tensor {tensor.name!r}: {len(tensor.data)} bytes do not fit "
            f"{tensor.dtype} of shape {list(tensor.shape)}"
        )
    return np.frombuffer(tensor.data, dtype=dt).reshape(tensor.shape)
