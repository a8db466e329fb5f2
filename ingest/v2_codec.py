"""v2 inference bodies <-> wire tensors, with the binary tensor data extension.

A request body is a JSON header, optionally followed by raw tensor bytes: the
``Inference-Header-Content-Length`` header gives the JSON's length, and each input that
travels as binary says how many of the following bytes are its own with
``parameters.binary_data_size``, in input order. Numeric tensors are little-endian,
row-major; BOOL is one byte per element; BYTES elements are each a 4-byte little-endian
length followed by the bytes. Responses mirror this for outputs asked for as binary
(``binary_data`` on the output, or ``binary_data_output`` on the request).

Every check names the input or output, and happens here, before anything is queued.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from ingest.errors import BadRequest
from ingest.json_numbers import NUMBER_DTYPES, number_array
from schemas.registry import ModelRecord, TensorSpec
from schemas.signature import SignatureError, check_shape
from schemas.tensors import STRING, Tensor, TensorError, decode_tensor, encode_array
from schemas.v2_api import (
    DTYPE_TO_V2,
    V2_TO_DTYPE,
    InferRequest,
    InferResponse,
    Parameters,
    RequestInput,
    ResponseOutput,
    infer_request_decoder,
    json_encoder,
)

#: Parameters of features inferq does not have; ignoring them would give wrong answers.
_UNSUPPORTED = {
    "shared_memory_region": "shared memory",
    "classification": "the classification extension",
}
_LEN = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class WantedOutput:
    name: str
    binary: bool


def v2_datatype(dtype: str) -> str:
    return DTYPE_TO_V2.get(dtype, dtype.upper())


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON header and the binary data after it."""
    if header_length is None:
        return body, b""
    try:
        size = int(header_length)
    except ValueError:
        raise BadRequest(
            f"Inference-Header-Content-Length {header_length!r} is not a number") from None
    if not 0 < size <= len(body):
        raise BadRequest(f"Inference-Header-Content-Length {size} does not fit the body of "
                         f"{len(body)} bytes")
    return body[:size], body[size:]


def decode_request(header: bytes) -> InferRequest:
    try:
        return infer_request_decoder.decode(header)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid inference request: {exc}") from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"inference request is not valid JSON: {exc}") from None


def _flag(params: Parameters, key: str, where: str) -> bool | None:
    value = params.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise BadRequest(f"{where}: parameter {key} must be true or false")


def _refuse_unsupported(params: Parameters, where: str) -> None:
    for key, feature in _UNSUPPORTED.items():
        if key in params:
            raise BadRequest(f"{where}: {feature} is not supported ({key})")


def pack_bytes(strings: Sequence[str]) -> bytes:
    """BYTES elements in the binary layout: 4-byte little-endian length, then the bytes."""
    parts: list[bytes] = []
    for s in strings:
        b = s.encode("utf-8")
        parts += (_LEN.pack(len(b)), b)
    return b"".join(parts)


def unpack_bytes(name: str, raw: bytes, count: int) -> tuple[str, ...]:
    out: list[str] = []
    pos = 0
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise BadRequest(f"input {name!r}: BYTES data ends inside an element length")
        (size,) = _LEN.unpack_from(raw, pos)
        pos += 4
        if pos + size > len(raw):
            raise BadRequest(f"input {name!r}: BYTES element of {size} bytes runs past its data")
        try:
            out.append(raw[pos:pos + size].decode("utf-8"))
        except UnicodeDecodeError:
            raise BadRequest(f"input {name!r}: BYTES element {len(out)} is not UTF-8 "
                             "(inferq passes BYTES to ONNX string tensors as text)") from None
        pos += size
    if len(out) != count:
        raise BadRequest(f"input {name!r}: {len(out)} BYTES elements for shape needing {count}")
    return tuple(out)


def _binary_tensor(inp: RequestInput, spec: TensorSpec, raw: bytes) -> Tensor:
    count = math.prod(inp.shape)
    shape = tuple(inp.shape)
    if spec.dtype == STRING:
        return Tensor(name=spec.name, dtype=STRING, shape=shape,
                      strings=unpack_bytes(spec.name, raw, count))
    itemsize = np.dtype(spec.dtype).itemsize
    if len(raw) != count * itemsize:
        raise BadRequest(f"input {spec.name!r}: binary_data_size {len(raw)} does not match "
                         f"{inp.datatype} of shape {inp.shape} ({count * itemsize} bytes)")
    if spec.dtype == "bool" and raw and max(raw) > 1:
        raise BadRequest(f"input {spec.name!r}: BOOL bytes must be 0 or 1")
    return Tensor(name=spec.name, dtype=spec.dtype, shape=shape, data=raw)


def _json_array(inp: RequestInput, dtype: str, value: list[Any]) -> npt.NDArray[Any]:
    """JSON data (flat or nested) as a flat array of ``dtype``, refusing lossy values."""
    try:
        flat = np.asarray(value, dtype=object).reshape(-1).tolist()
    except ValueError:
        flat = [value]  # numpy refused the nesting: let the ragged check below say so
    kinds = {type(v) for v in flat}
    where = f"input {inp.name!r}"
    if list in kinds:
        raise BadRequest(f"{where}: nested data arrays are ragged")
    if dtype == STRING:
        if kinds - {str}:
            raise BadRequest(f"{where}: BYTES data must be strings")
        return np.array(flat, dtype=object)
    if dtype == "bool":
        if kinds - {bool}:
            raise BadRequest(f"{where}: BOOL data must be true or false")
        return np.array(flat, dtype=np.bool_)
    target = np.dtype(dtype)
    if target.kind in "iu":
        if kinds - {int}:
            raise BadRequest(f"{where}: {inp.datatype} data must be integers")
        info = np.iinfo(target)
        if flat and (min(flat) < info.min or max(flat) > info.max):
            raise BadRequest(f"{where}: values {min(flat)}..{max(flat)} do not fit "
                             f"{inp.datatype}")
        return np.array(flat, dtype=target)
    if kinds - {int, float}:
        raise BadRequest(f"{where}: {inp.datatype} data must be numbers")
    wide = np.array(flat, dtype=np.float64)
    if wide.size and np.abs(wide).max() > np.finfo(target).max:
        raise BadRequest(f"{where}: values beyond ±{np.finfo(target).max:g} do not fit "
                         f"{inp.datatype}")
    return wide.astype(target)


def _number_data(inp: RequestInput, dtype: str) -> npt.NDArray[Any] | None:
    """Numeric data the fast way (``ingest/json_numbers.py``), flat or nested as
    ``shape``; None: the general way decides."""
    array = number_array(inp.data, 1, dtype)
    if array is None and len(inp.shape) > 1:
        array = number_array(inp.data, len(inp.shape), dtype)
    return array


def _json_tensor(inp: RequestInput, spec: TensorSpec) -> Tensor:
    array = _number_data(inp, spec.dtype) if spec.dtype in NUMBER_DTYPES else None
    if array is None:
        try:
            value = msgspec.json.decode(inp.data, type=list[Any])
        except (msgspec.ValidationError, msgspec.DecodeError):
            raise BadRequest(f"input {spec.name!r}: data must be a JSON array") from None
        array = _json_array(inp, spec.dtype, value)
    count = math.prod(inp.shape)
    if array.size != count:
        raise BadRequest(f"input {spec.name!r}: {array.size} values for shape {inp.shape} "
                         f"(needs {count})")
    return encode_array(spec.name, array.reshape(inp.shape))


def inputs_to_tensors(req: InferRequest, binary: bytes, model: ModelRecord) -> tuple[Tensor, ...]:
    """Check every input against the model's signature and encode it for the bus."""
    _refuse_unsupported(req.parameters, "request")
    specs = {s.name: s for s in model.inputs}
    tensors: list[Tensor] = []
    offset = 0
    for inp in req.inputs:
        spec = specs.get(inp.name)
        if spec is None:
            raise BadRequest(f"unknown input {inp.name!r}: model {model.name} has inputs "
                             + ", ".join(repr(s.name) for s in model.inputs))
        if any(t.name == inp.name for t in tensors):
            raise BadRequest(f"input {inp.name!r} is given more than once")
        _refuse_unsupported(inp.parameters, f"input {inp.name!r}")
        dtype = V2_TO_DTYPE.get(inp.datatype)
        if dtype is None:
            raise BadRequest(f"input {inp.name!r}: datatype {inp.datatype!r} is not supported "
                             f"(one of {', '.join(V2_TO_DTYPE)})")
        if dtype != spec.dtype:
            raise BadRequest(f"input {inp.name!r}: datatype {inp.datatype} does not match the "
                             f"model's {v2_datatype(spec.dtype)}")
        if any(d < 0 for d in inp.shape):
            raise BadRequest(f"input {inp.name!r}: shape {inp.shape} has a negative dimension")
        try:
            check_shape(spec, inp.shape)
        except SignatureError:
            raise BadRequest(f"input {inp.name!r}: shape {inp.shape} does not match the "
                             f"model's {list(spec.shape)} (-1: any size)") from None
        size = inp.parameters.get("binary_data_size")
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise BadRequest(f"input {inp.name!r}: binary_data_size must be a "
                                 "non-negative integer")
            if len(inp.data):
                raise BadRequest(f"input {inp.name!r} has both data and binary_data_size")
            if offset + size > len(binary):
                raise BadRequest(f"input {inp.name!r}: binary_data_size {size} runs past the "
                                 f"{len(binary)} bytes of binary data in the body")
            tensors.append(_binary_tensor(inp, spec, binary[offset:offset + size]))
            offset += size
        else:
            if not len(inp.data) or bytes(inp.data) == b"null":
                raise BadRequest(f"input {inp.name!r} has no data (give data, or "
                                 "binary_data_size with binary data after the JSON)")
            tensors.append(_json_tensor(inp, spec))
    if offset != len(binary):
        raise BadRequest(f"the body carries {len(binary)} bytes of binary data but the inputs' "
                         f"binary_data_size add up to {offset}")
    given = {t.name for t in tensors}
    missing = [s.name for s in model.inputs if s.name not in given]
    if missing:
        raise BadRequest("missing input " + ", ".join(repr(n) for n in missing))
    return tuple(tensors)


def wanted_outputs(req: InferRequest, model: ModelRecord) -> list[WantedOutput]:
    """Outputs to return, in order, and whether each goes as binary data."""
    default = _flag(req.parameters, "binary_data_output", "request") or False
    if req.outputs is None:
        return [WantedOutput(s.name, default) for s in model.outputs]
    names = {s.name for s in model.outputs}
    wanted: list[WantedOutput] = []
    for out in req.outputs:
        if out.name not in names:
            raise BadRequest(f"unknown output {out.name!r}: model {model.name} has outputs "
                             + ", ".join(repr(s.name) for s in model.outputs))
        if any(w.name == out.name for w in wanted):
            raise BadRequest(f"output {out.name!r} is requested more than once")
        _refuse_unsupported(out.parameters, f"output {out.name!r}")
        binary = _flag(out.parameters, "binary_data", f"output {out.name!r}")
        wanted.append(WantedOutput(out.name, default if binary is None else binary))
    return wanted


def _output(tensor: Tensor, binary: bool) -> tuple[ResponseOutput, bytes]:
    datatype = v2_datatype(tensor.dtype)
    shape = list(tensor.shape)
    if binary:
        raw = pack_bytes(tensor.strings or ()) if tensor.dtype == STRING else tensor.data
        return ResponseOutput(name=tensor.name, datatype=datatype, shape=shape,
                              parameters={"binary_data_size": len(raw)}), raw
    if tensor.dtype == STRING:
        data = json_encoder.encode(list(tensor.strings or ()))
    else:
        data = json_encoder.encode(decode_tensor(tensor).reshape(-1).tolist())
    return ResponseOutput(name=tensor.name, datatype=datatype, shape=shape,
                          data=msgspec.Raw(data)), b""


def encode_response(
    model: ModelRecord, request_id: str | None, outputs: Sequence[Tensor],
    wanted: Sequence[WantedOutput],
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when binary data follows it."""
    by_name = {t.name: t for t in outputs}
    described: list[ResponseOutput] = []
    chunks: list[bytes] = []
    for w in wanted:
        tensor = by_name.get(w.name)
        if tensor is None:
            raise TensorError(f"the runner returned no output {w.name!r}")
        out, raw = _output(tensor, w.binary)
        described.append(out)
        if w.binary:
            chunks.append(raw)
    header = json_encoder.encode(InferResponse(
        model_name=model.name, model_version=model.version, id=request_id, outputs=described))
    if not any(w.binary for w in wanted):
        return header, None
    return header + b"".join(chunks), len(header)
