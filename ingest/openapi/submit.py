"""The submit API: ``POST /api/inference/tasks/{task_id}``, ``GET .../subtasks/{id}``."""

from __future__ import annotations

from ingest.openapi.builder import API_VERSION, JSON, Spec, body, errors, ok, path_param
from schemas.submit_api import SubmitBody, SubmitResponse

SECURITY: list[JSON] = [{"apiKey": []}, {"bearerKey": []}]


def paths(spec: Spec) -> JSON:
    result = spec.ref(SubmitResponse)
    return {
        "/api/inference/tasks/{task_id}": {"post": {
            "tags": ["submit"], "operationId": "submitTask", "security": SECURITY,
            "summary": "Run a task's model on the given bindings and wait for the result",
            "description": "Blocks until the result is in, or answers `state: pending` "
                           "with the subtask id after the sync timeout.",
            "parameters": [path_param("task_id", "the task's id"), API_VERSION],
            "requestBody": body(spec.ref(SubmitBody)),
            "responses": ok(200, "The result, or pending", result)
            | errors(400, 401, 404, 413, 503),
        }},
        "/api/inference/subtasks/{subtask_id}": {"get": {
            "tags": ["submit"], "operationId": "getSubtask", "security": SECURITY,
            "summary": "A subtask's result (or pending)",
            "parameters": [path_param("subtask_id", "the id a submit returned"), API_VERSION],
            "responses": ok(200, "The result, or pending", result) | errors(401, 404),
        }},
        "/api/inference/subtasks/{subtask_id}/events": {"get": {
            "tags": ["streams"], "operationId": "subtaskEvents", "security": SECURITY,
            "summary": "Server-sent events of one subtask's lifecycle",
            "parameters": [path_param("subtask_id", "the subtask id"), API_VERSION],
            "responses": ok(200, "text/event-stream", {"type": "string"}, "text/event-stream")
            | errors(401, 404, 503),
        }},
        "/api/inference/tasks/{task_id}/events": {"get": {
            "tags": ["streams"], "operationId": "taskEvents", "security": SECURITY,
            "summary": "Server-sent events of every subtask of a task",
            "parameters": [path_param("task_id", "the task id"), API_VERSION],
            "responses": ok(200, "text/event-stream", {"type": "string"}, "text/event-stream")
            | errors(401, 404, 503),
        }},
        "/api/inference/subtasks/{subtask_id}/deliveries": {"get": {
            "tags": ["streams"], "operationId": "subtaskDeliveries", "security": SECURITY,
            "summary": "Webhook delivery attempts for a subtask",
            "parameters": [path_param("subtask_id", "the subtask id"), API_VERSION],
            "responses": ok(200, "Deliveries", {}) | errors(401, 404, 503),
        }},
    }
