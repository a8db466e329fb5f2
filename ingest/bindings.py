"""Submit-API bindings -> wire tensors, checked against the model's signature.

Everything a client can get wrong is found here, before anything reaches the bus, and
answered with a message naming the tensor and what the model expects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import msgspec
import numpy as np
import numpy.typing as npt

from ingest.errors import BadRequest
from ingest.json_numbers import NUMBER_DTYPES, number_array
from schemas.files import FILE_URI_PREFIX, file_id_of
from schemas.messages import UrlInput
from schemas.registry import ModelRecord, TensorSpec
from schemas.signature import SignatureError, check_shape, describe
from schemas.submit_api import Binding
from schemas.tensors import STRING, Tensor, encode_array, out_of_range

MAX_URL_LENGTH = 2048
#: float64 holds every integer up to 2**53 exactly, and no further.
_EXACT_FLOAT_INTS = float(2**53)


def cast_value(spec: TensorSpec, value: Any) -> npt.NDArray[Any]:
    """A JSON value (nested lists) as an array of ``spec.dtype``, refusing lossy casts."""
    try:
        src = np.asarray(value)
    except ValueError:
        raise BadRequest(f"tensor {spec.name!r}: nested arrays are ragged") from None
    kind = src.dtype.kind
    if kind == "O":
        # Either ragged/mixed, or integers too large for any numpy integer type.
        try:
            wide = np.asarray(value, dtype=np.float64)
        except (ValueError, TypeError):
            raise BadRequest(f"tensor {spec.name!r}: nested arrays are ragged or mix types"
                             ) from None
        if np.dtype(spec.dtype).kind != "f":
            raise BadRequest(f"tensor {spec.name!r}: values {wide.min():.0f}..{wide.max():.0f} "
                             f"do not fit {spec.dtype}")
        src, kind = wide, "f"
    if spec.dtype == STRING:
        if kind != "U" and src.size:
            raise BadRequest(f"tensor {spec.name!r} expects strings")
        return src.astype(object)
    if kind == "U":
        raise BadRequest(f"tensor {spec.name!r} expects {spec.dtype} numbers, got strings")
    target = np.dtype(spec.dtype)
    if target.kind in "iu" and kind == "f":
        if not np.all(np.isfinite(src)) or not np.all(src == np.floor(src)):
            raise BadRequest(f"tensor {spec.name!r} expects integers ({spec.dtype})")
        if src.size and float(np.abs(src).max()) >= _EXACT_FLOAT_INTS:
            return _exact_integers(spec, value, src, target)
    elif target.kind == "b" and kind != "b":
        if src.size and not np.all((src == 0) | (src == 1)):
            raise BadRequest(f"tensor {spec.name!r} expects booleans (true/false or 0/1)")
    if target.kind in "iuf" and (why := out_of_range(src, target)):
        raise BadRequest(f"tensor {spec.name!r}: {why}")
    return src.astype(target, copy=False)


def _exact_integers(spec: TensorSpec, value: Any, src: npt.NDArray[Any],
                    target: np.dtype[Any]) -> npt.NDArray[Any]:
    """Integers past 2**53 that numpy read as float64 (it does so when a list mixes
    values only int64 holds with values only uint64 holds), converted one by one from
    the JSON values so none is rounded; the float64 view must agree with the result,
    which refuses values out of range (a float past the target's range casts to
    garbage, a Python int raises)."""
    try:
        with np.errstate(invalid="ignore", over="ignore"):  # refused just below
            exact = np.array(value, dtype=target)
    except (OverflowError, ValueError, TypeError):
        exact = None
    if exact is None or not np.array_equal(exact.astype(np.float64), src):
        raise BadRequest(f"tensor {spec.name!r}: values {src.min():.0f}..{src.max():.0f} "
                         f"do not fit {spec.dtype}")
    return exact


def _json_array(binding: Binding, spec: TensorSpec) -> npt.NDArray[Any]:
    if binding.payload is None:
        raise BadRequest(f"binding {spec.name!r}: payloadType Json needs a payload")
    if binding.fileUrl is not None:
        raise BadRequest(f"binding {spec.name!r}: fileUrl is only for payloadType Binary")
    if spec.dtype in NUMBER_DTYPES and (
        array := number_array(binding.payload, len(spec.shape), spec.dtype)
    ) is not None:
        return array
    try:
        value = msgspec.json.decode(binding.payload)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"binding {spec.name!r}: payload is not valid JSON: {exc}") from None
    return cast_value(spec, value)


def _text_array(binding: Binding, spec: TensorSpec) -> npt.NDArray[Any]:
    if binding.payload is None:
        raise BadRequest(f"binding {spec.name!r}: payloadType Text needs a payload")
    if binding.fileUrl is not None:
        raise BadRequest(f"binding {spec.name!r}: fileUrl is only for payloadType Binary")
    if spec.dtype != STRING:
        raise BadRequest(
            f"binding {spec.name!r}: Text feeds string tensors; the model expects "
            f"{describe(spec)} (use payloadType Json)"
        )
    # One text fills a tensor of the model's rank with every dimension 1.
    return np.array([binding.payload], dtype=object).reshape((1,) * len(spec.shape))


def _url_input(binding: Binding, spec: TensorSpec) -> UrlInput:
    url = binding.fileUrl
    if not url:
        raise BadRequest(f"binding {spec.name!r}: payloadType Binary needs a fileUrl")
    if binding.payload is not None:
        raise BadRequest(f"binding {spec.name!r}: payloadType Binary takes no payload")
    if url.startswith(FILE_URI_PREFIX):
        # An uploaded file (POST /files): the route checks it is the caller's.
        if file_id_of(url) is None:
            raise BadRequest(f"binding {spec.name!r}: fileUrl {url[:80]!r} is not a valid "
                             f"{FILE_URI_PREFIX}<id> URL")
        return UrlInput(name=spec.name, url=url)
    parts = urlsplit(url)
    if len(url) > MAX_URL_LENGTH or parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest(
            f"binding {spec.name!r}: fileUrl must be an http(s) URL of at most "
            f"{MAX_URL_LENGTH} characters, or an uploaded file's {FILE_URI_PREFIX}<id>"
        )
    return UrlInput(name=spec.name, url=url)


def bindings_to_inputs(
    bindings: Sequence[Binding], model: ModelRecord
) -> tuple[tuple[Tensor, ...], tuple[UrlInput, ...]]:
    specs = {s.name: s for s in model.inputs}
    seen: set[str] = set()
    tensors: list[Tensor] = []
    urls: list[UrlInput] = []
    for b in bindings:
        spec = specs.get(b.tensorName)
        if spec is None:
            raise BadRequest(
                f"unknown tensor {b.tensorName!r}: the model's inputs are "
                + ", ".join(f"{s.name} ({describe(s)})" for s in model.inputs)
            )
        if b.tensorName in seen:
            raise BadRequest(f"tensor {b.tensorName!r} is bound more than once")
        seen.add(b.tensorName)
        if b.payloadType == "Binary":
            urls.append(_url_input(b, spec))
            continue
        array = _json_array(b, spec) if b.payloadType == "Json" else _text_array(b, spec)
        try:
            check_shape(spec, array.shape)
        except SignatureError as exc:
            raise BadRequest(str(exc)) from None
        tensors.append(encode_array(spec.name, array))
    missing = [s for s in model.inputs if s.name not in seen]
    if missing:
        raise BadRequest(
            "missing binding for "
            + ", ".join(f"tensor {s.name!r} ({describe(s)})" for s in missing)
        )
    return tuple(tensors), tuple(urls)
