"""HTTP bodies of the Open Inference Protocol v2 (KServe / Triton REST).

Strict at the edge: request bodies reject unknown fields. Tensor ``data`` is kept as raw
JSON (``msgspec.Raw``) so it can be decoded once, straight into an array of the model's
type, and so responses embed pre-encoded data without a detour through Python lists.
"""

from __future__ import annotations

import msgspec
from msgspec import UNSET, UnsetType

#: Values a ``parameters`` object may hold (the protocol allows string, number, bool).
Parameters = dict[str, str | int | float | bool]

#: v2 datatypes to wire dtype names (schemas/tensors.py); BYTES are UTF-8 strings here.
V2_TO_DTYPE: dict[str, str] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": "string",
}
DTYPE_TO_V2: dict[str, str] = {v: k for k, v in V2_TO_DTYPE.items()}

#: The platform name Triton gives ONNX models.
PLATFORM = "onnxruntime_onnx"


class RequestInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters = {}
    #: Flat row-major or nested; absent when the tensor travels as binary data.
    data: msgspec.Raw = msgspec.Raw()


class RequestOutput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    parameters: Parameters = {}


class InferRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    inputs: list[RequestInput]
    id: str | None = None
    parameters: Parameters = {}
    #: Selects and orders the outputs; absent means every output of the model.
    outputs: list[RequestOutput] | None = None


class ResponseOutput(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    name: str
    datatype: str
    shape: list[int]
    parameters: Parameters | UnsetType = UNSET
    #: Flat row-major JSON; unset when the tensor follows the JSON as binary data.
    data: msgspec.Raw | UnsetType = UNSET


class InferResponse(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    model_name: str
    model_version: str
    outputs: list[ResponseOutput]
    id: str | None = None


class MetadataTensor(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    datatype: str
    #: ``-1`` marks a dynamic dimension.
    shape: list[int]


class ModelMetadata(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


class ServerMetadata(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: str
    extensions: list[str]


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    error: str


infer_request_decoder = msgspec.json.Decoder(InferRequest)
json_encoder = msgspec.json.Encoder()
