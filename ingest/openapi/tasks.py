"""The tasks API: runs, tasks, engines and files (versioned success bodies)."""

from __future__ import annotations

from ingest.openapi.builder import API_VERSION, JSON, Spec, body, errors, path_param
from schemas.tasks_api import (
    CancelDTO,
    EngineCommandDTO,
    EngineDTO,
    FileDTO,
    LogsDTO,
    RunBody,
    TaskDTO,
    TaskStatusDTO,
    TimingsDTO,
)

SECURITY: list[JSON] = [{"apiKey": []}, {"bearerKey": []}]
_RATE: JSON = {name: {"schema": {"type": "string"}, "description": text} for name, text in (
    ("X-RateLimit-Limit", "the key's limit for this class of call"),
    ("X-RateLimit-Remaining", "calls left now"),
    ("X-RateLimit-Reset", "Unix time (s) at which the bucket is full again"))}


def versioned(status: int, description: str, schema: JSON) -> JSON:
    """Version 1 wraps the resource; ``X-API-Version: 2`` answers it bare."""
    wrapper: JSON = {"type": "object", "properties": {
        "success": {"const": True}, "status": {"type": "integer"}, "data": schema},
        "required": ["success", "status", "data"]}
    return {str(status): {"description": description, "headers": _RATE,
                          "content": {"application/json": {
                              "schema": {"anyOf": [wrapper, schema]}}}}}


def _op(op_id: str, summary: str, responses: JSON, tag: str, **rest: object) -> JSON:
    params = list(rest.pop("parameters", []))  # type: ignore[call-overload]
    return {"tags": [tag], "operationId": op_id, "security": SECURITY, "summary": summary,
            "parameters": [*params, API_VERSION],
            "responses": responses | errors(401, 429), **rest}


def paths(spec: Spec) -> JSON:
    task = spec.ref(TaskDTO)
    tid = path_param("id", "the task (subtask) id")
    eid = path_param("id", "the engine (runner) id")
    fid = path_param("id", "the file id")
    run = _op("runTask", "Run an app (a task id or model name[:version])",
              versioned(200, "The task", task) | errors(400, 404, 413, 503), "tasks",
              requestBody=body(spec.ref(RunBody)))
    run_alias = {**run, "operationId": "runApp"}

    def get(op_id: str, summary: str, schema: JSON) -> JSON:
        return _op(op_id, summary, versioned(200, summary, schema) | errors(404), "tasks",
                   parameters=[tid])

    return {
        "/run": {"post": run},
        "/apps/run": {"post": run_alias},
        "/tasks/{id}": {"get": get("getTask", "The task", task)},
        "/tasks/{id}/status": {"get": get("getTaskStatus", "Its status",
                                          spec.ref(TaskStatusDTO))},
        "/tasks/{id}/timings": {"get": get("getTaskTimings", "Where its time went (ms)",
                                           spec.ref(TimingsDTO))},
        "/tasks/{id}/logs": {"get": get("getTaskLogs", "Its lifecycle lines",
                                        spec.ref(LogsDTO))},
        "/tasks/{id}/stream": {"get": _op(
            "streamTask", "Server-sent events: update (queued, running), then done or error; "
            "each event's data is the task as GET /tasks/{id} shows it then; resumable "
            "with Last-Event-ID",
            {"200": {"description": "text/event-stream", "headers": _RATE, "content": {
                "text/event-stream": {"schema": {"type": "string"}}}}} | errors(404, 503),
            "tasks", parameters=[tid, {
                "name": "Last-Event-ID", "in": "header", "required": False,
                "description": "the id of the last event seen (<id>:<1|2|3>): resume after it",
                "schema": {"type": "string"}}])},
        "/tasks/{id}/cancel": {"post": _op(
            "cancelTask", "Cancel: a queued task never runs, a running one is interrupted",
            versioned(200, "Its status after the cancel", spec.ref(CancelDTO))
            | errors(404, 503), "tasks", parameters=[tid])},
        "/engines/list": {m: _op(f"listEngines{m.title()}", "Live runners (heartbeats)",
                                 versioned(200, "Engines", {"type": "array",
                                                            "items": spec.ref(EngineDTO)}),
                                 "engines") for m in ("get", "post")},
        "/engines/{id}": {"get": _op("getEngine", "One live runner",
                                     versioned(200, "The engine", spec.ref(EngineDTO))
                                     | errors(404), "engines", parameters=[eid])},
        "/engines/{id}/drain": {"post": _op(
            "drainEngine", "Finish what it holds, leave, exit (admin token)",
            versioned(202, "Sent", spec.ref(EngineCommandDTO)) | errors(403, 404, 503),
            "engines", parameters=[eid])},
        "/engines/{id}/stop": {"post": _op(
            "stopEngine", "Hand back what it holds, leave, exit (admin token)",
            versioned(202, "Sent", spec.ref(EngineCommandDTO)) | errors(403, 404, 503),
            "engines", parameters=[eid])},
        "/files": {"post": _op(
            "uploadFile", "Upload a file (multipart, part 'file')",
            versioned(201, "The file", spec.ref(FileDTO)) | errors(400, 413), "files",
            requestBody=body({"type": "object", "properties": {
                "file": {"type": "string", "contentMediaType": "application/octet-stream"}},
                "required": ["file"]}, media="multipart/form-data"))},
        "/files/{id}": {
            "get": _op("getFile", "A file's metadata",
                       versioned(200, "The file", spec.ref(FileDTO)) | errors(404), "files",
                       parameters=[fid]),
            "delete": _op("deleteFile", "Delete a file",
                          versioned(200, "Deleted", {"type": "object", "properties": {
                              "id": {"type": "string"}, "deleted": {"const": True}}})
                          | errors(404), "files", parameters=[fid]),
        },
    }
