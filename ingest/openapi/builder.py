"""Pieces every dialect's part of the OpenAPI document is built from.

Body schemas come from the msgspec structs the handlers decode and encode
(``msgspec.json.schema_components``), so a field added to a wire type shows up in the
document without a second edit; only the envelopes (errors, plain dict views) are
written by hand here.
"""

from __future__ import annotations

from typing import Any

import msgspec

JSON = dict[str, Any]
REF = "#/components/schemas/{name}"

ERROR_SCHEMAS: JSON = {
    "ErrorV1": {
        "type": "object",
        "description": "Version-1 error wrapper (the default; see X-API-Version).",
        "properties": {
            "success": {"const": False},
            "status": {"type": "integer"},
            "error": {
                "type": "object",
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                "required": ["code", "message"],
            },
        },
        "required": ["success", "status", "error"],
    },
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details (with X-API-Version: 2).",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
        },
        "required": ["type", "title", "status", "detail"],
    },
}

_ERROR_TEXT = {
    400: "The request is invalid; the message names what is wrong",
    401: "Missing, invalid or revoked credentials",
    403: "Not allowed (the admin API is disabled without INFERQ_ADMIN_TOKEN)",
    404: "No such resource, or not this account's",
    413: "The request body is larger than the limit",
    429: "Rate limited; retry after Retry-After seconds",
    503: "Overloaded or the bus is unavailable; retry after Retry-After seconds",
}


class Spec:
    """Collects the msgspec types referenced by operations, for the components section."""

    def __init__(self) -> None:
        self._types: dict[str, type] = {}

    def ref(self, kind: type) -> JSON:
        self._types[kind.__name__] = kind
        return {"$ref": REF.format(name=kind.__name__)}

    def components(self) -> JSON:
        _, schemas = msgspec.json.schema_components(list(self._types.values()),
                                                    ref_template=REF)
        return schemas | ERROR_SCHEMAS


def json_content(schema: JSON) -> JSON:
    return {"application/json": {"schema": schema}}


def body(schema: JSON, media: str = "application/json", required: bool = True) -> JSON:
    return {"required": required, "content": {media: {"schema": schema}}}


def ok(status: int, description: str, schema: JSON | None = None,
       media: str = "application/json") -> JSON:
    out: JSON = {"description": description}
    if schema is not None:
        out["content"] = {media: {"schema": schema}}
    return {str(status): out}


def errors(*statuses: int) -> JSON:
    """Error responses in both shapes the caller may ask for."""
    out: JSON = {}
    for status in statuses:
        resp: JSON = {
            "description": _ERROR_TEXT[status],
            "content": {
                "application/json": {"schema": {"$ref": REF.format(name="ErrorV1")}},
                "application/problem+json": {"schema": {"$ref": REF.format(name="Problem")}},
            },
        }
        if status in (429, 503):
            resp["headers"] = {"Retry-After": {"schema": {"type": "string"},
                                               "description": "seconds to wait"}}
        out[str(status)] = resp
    return out


def path_param(name: str, description: str) -> JSON:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string"}}


def query_param(name: str, description: str, required: bool = False,
                schema: JSON | None = None) -> JSON:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema or {"type": "string"}}


API_VERSION: JSON = {
    "name": "X-API-Version", "in": "header", "required": False,
    "description": "2: errors as RFC 9457 application/problem+json; otherwise the "
                   "version-1 error wrapper",
    "schema": {"type": "string", "enum": ["1", "2"]},
}
