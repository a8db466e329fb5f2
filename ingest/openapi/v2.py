"""The Open Inference Protocol v2 (KServe) REST routes under /v2.

Errors here use the protocol's ``{"error": "..."}`` body, not the tasks-API shapes.
The catch-all ``/v2/{rest:path}`` (404/405 in the protocol's shape) is not an operation
and is left out.
"""

from __future__ import annotations

from ingest.openapi.builder import JSON, Spec, body, path_param
from schemas.v2_api import ErrorBody, ModelMetadata, ServerMetadata

SECURITY: list[JSON] = [{"apiKey": []}, {"bearerKey": []}]
# Tensor data is decoded lazily (msgspec.Raw), so these two are written by hand.
_TENSOR: JSON = {"type": "object", "required": ["name", "shape", "datatype"],
                 "properties": {"name": {"type": "string"},
                                "shape": {"type": "array", "items": {"type": "integer"}},
                                "datatype": {"type": "string"}, "data": {},
                                "parameters": {"type": "object"}}}
INFER_REQUEST: JSON = {
    "type": "object", "required": ["inputs"],
    "properties": {"id": {"type": "string"}, "parameters": {"type": "object"},
                   "inputs": {"type": "array", "items": _TENSOR},
                   "outputs": {"type": "array", "items": {
                       "type": "object", "required": ["name"],
                       "properties": {"name": {"type": "string"},
                                      "parameters": {"type": "object"}}}}}}
INFER_RESPONSE: JSON = {
    "type": "object", "required": ["model_name", "outputs"],
    "properties": {"model_name": {"type": "string"}, "model_version": {"type": "string"},
                   "id": {"type": "string"}, "parameters": {"type": "object"},
                   "outputs": {"type": "array", "items": _TENSOR}}}


def _errors(spec: Spec, *statuses: int) -> JSON:
    err = {"application/json": {"schema": spec.ref(ErrorBody)}}
    return {str(s): {"description": "error", "content": err} for s in statuses}


def _empty(description: str) -> JSON:
    return {"200": {"description": description}}


def paths(spec: Spec) -> JSON:
    name = path_param("name", "model name")
    version = path_param("version", "model version")
    out: JSON = {
        "/v2/health/live": {"get": {"tags": ["v2"], "operationId": "v2Live", "security": [],
                                    "summary": "Server live", "responses": _empty("live")}},
        "/v2/health/ready": {"get": {
            "tags": ["v2"], "operationId": "v2Ready", "security": [],
            "summary": "Server ready", "responses": _empty("ready") | _errors(spec, 400, 503)}},
        "/v2": {"get": {
            "tags": ["v2"], "operationId": "v2Server", "security": [],
            "summary": "Server metadata",
            "responses": {"200": {"description": "metadata", "content": {
                "application/json": {"schema": spec.ref(ServerMetadata)}}}}}},
    }
    for suffix, params, tag in (("", [name], ""), ("/versions/{version}", [name, version], "V")):
        base = "/v2/models/{name}" + suffix
        out[base] = {"get": {
            "tags": ["v2"], "operationId": f"v2ModelMetadata{tag}", "security": SECURITY,
            "summary": "Model metadata", "parameters": params,
            "responses": {"200": {"description": "metadata", "content": {
                "application/json": {"schema": spec.ref(ModelMetadata)}}}}
            | _errors(spec, 400, 401, 404)}}
        out[base + "/ready"] = {"get": {
            "tags": ["v2"], "operationId": f"v2ModelReady{tag}", "security": SECURITY,
            "summary": "Model ready", "parameters": params,
            "responses": _empty("ready") | _errors(spec, 400, 401, 404)}}
        out[base + "/infer"] = {"post": {
            "tags": ["v2"], "operationId": f"v2Infer{tag}", "security": SECURITY,
            "summary": "Inference (JSON tensors; the binary extension is also accepted)",
            "parameters": params, "requestBody": body(INFER_REQUEST),
            "responses": {"200": {"description": "outputs", "content": {
                "application/json": {"schema": INFER_RESPONSE},
                "application/octet-stream": {"schema": {"type": "string",
                                                        "format": "binary"}}}}}
            | _errors(spec, 400, 401, 404, 413, 500, 503, 504)}}
    return out
