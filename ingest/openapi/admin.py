"""The admin API: keys, models and tasks, behind the admin bearer token."""

from __future__ import annotations

from ingest.openapi.builder import (
    API_VERSION,
    JSON,
    Spec,
    body,
    errors,
    ok,
    path_param,
    query_param,
)
from schemas.admin_api import (
    BatchingPatch,
    CreateKey,
    CreateTask,
    KeyView,
    RotateKey,
    RotateWebhookSecret,
    TaskView,
)
from schemas.registry import ModelRecord

SECURITY: list[JSON] = [{"adminToken": []}]
_NAME: JSON = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"}


def _op(op_id: str, summary: str, responses: JSON, **rest: object) -> JSON:
    params = list(rest.pop("parameters", []))  # type: ignore[call-overload]
    return {"tags": ["admin"], "operationId": op_id, "security": SECURITY,
            "summary": summary, "parameters": [*params, API_VERSION],
            "responses": responses | errors(401, 403), **rest}


def paths(spec: Spec) -> JSON:
    key = spec.ref(KeyView)
    key_created: JSON = {"allOf": [key, {"type": "object",
                                         "properties": {"key": {"type": "string"}},
                                         "required": ["key"]}]}
    model: JSON = {"allOf": [spec.ref(ModelRecord), {
        "type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}]}
    task = spec.ref(TaskView)
    key_id = path_param("key_id", "the key's id")
    return {
        "/admin/keys": {
            "post": _op("createKey", "Create an API key (shown once)",
                        ok(201, "The key, with its secret", key_created) | errors(400),
                        requestBody=body(spec.ref(CreateKey), required=False)),
            "get": _op("listKeys", "List keys (never the secrets)",
                       ok(200, "Keys", {"type": "array", "items": key})),
        },
        "/admin/keys/{key_id}": {
            "delete": _op("revokeKey", "Revoke a key at once", ok(200, "Revoked", key)
                          | errors(404), parameters=[key_id]),
        },
        "/admin/keys/{key_id}/rotate": {
            "post": _op("rotateKey", "New key for the same account; the old one revoked",
                        ok(201, "The new key, with its secret", key_created)
                        | errors(400, 404), parameters=[key_id],
                        requestBody=body(spec.ref(RotateKey), required=False)),
        },
        "/admin/models": {
            "post": _op("uploadModel", "Upload an ONNX model file",
                        ok(201, "The stored model and its signature", model)
                        | errors(400, 413),
                        parameters=[query_param("name", "model name", True, _NAME),
                                    query_param("version", "model version (default 1)",
                                                schema=_NAME)],
                        requestBody=body({"type": "string", "format": "binary"},
                                         "application/octet-stream")),
            "get": _op("listModels", "List models",
                       ok(200, "Models", {"type": "array", "items": model})),
        },
        "/admin/models/{model_id}": {
            "patch": _op("updateModelBatching",
                         "Set or clear a model version's dynamic batching (merge patch; "
                         "every request on it unless its task sets its own)",
                         ok(200, "The model", model) | errors(400, 404, 413),
                         parameters=[path_param("model_id", "the model's id, name:version "
                                                            "(a bare name means version 1)")],
                         requestBody=body(spec.ref(BatchingPatch))),
        },
        "/admin/accounts/{account}/webhook-secret": {
            "post": _op("rotateWebhookSecret",
                        "New webhook signing secret for an account (shown once)",
                        ok(201, "The new secret", {
                            "type": "object", "required": ["account", "secret"],
                            "properties": {"account": {"type": "string"},
                                           "secret": {"type": "string"},
                                           "createdAtMs": {"type": "integer"}}})
                        | errors(400),
                        parameters=[path_param("account", "the account id")],
                        requestBody=body(spec.ref(RotateWebhookSecret), required=False)),
        },
        "/admin/tasks": {
            "post": _op("createTask", "Create a task on a stored model",
                        ok(201, "The task", task) | errors(400, 404),
                        requestBody=body(spec.ref(CreateTask))),
            "get": _op("listTasks", "List tasks",
                       ok(200, "Tasks", {"type": "array", "items": task}),
                       parameters=[query_param("account", "only this account's")]),
        },
        "/admin/tasks/{task_id}": {
            "patch": _op("updateTaskBatching",
                         "Set or clear a task's dynamic batching (merge patch; overrides "
                         "its model's)",
                         ok(200, "The task", task) | errors(400, 404, 413),
                         parameters=[path_param("task_id", "the task's id")],
                         requestBody=body(spec.ref(BatchingPatch))),
        },
    }
